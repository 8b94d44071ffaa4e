"""The persisted Merkle index: updated in the record's batch, equal to a rebuild, repairable."""

from __future__ import annotations

from crdt.merkle import MemoryMerkleStorage, MerkleTree
from meshkp.keys.merkle_index import MERKLE_PREFIX, TOMBSTONES_COUNTER, MerkleIndex, state_hash
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import RecordWrite

from .helpers import record


def _write(store: MemoryStore, index: MerkleIndex, *indexes: int) -> None:
    writes = [RecordWrite(record(i).fingerprint, record(i).encode(), counters={"keys": 1})
              for i in indexes]
    store.write(index.attach(store, writes))


def _expected_root(indexes: range) -> bytes:
    storage = MemoryMerkleStorage()
    tree = MerkleTree(storage)
    batch = tree.batch()
    for i in indexes:
        batch.put(record(i).fingerprint, record(i).state_hash())
    storage.apply(batch.writes())
    return tree.root()


def test_incremental_updates_match_a_tree_built_from_scratch() -> None:
    store, index = MemoryStore(), MerkleIndex()
    _write(store, index, 0, 1, 2)
    for i in range(3, 12):
        _write(store, index, i)
    assert index.tree(store).root() == _expected_root(range(12))
    assert index.size(store) == 12
    assert index.tree(store).get(record(5).fingerprint) == state_hash(record(5).encode())


def test_the_tree_is_written_in_the_same_batch_as_the_record() -> None:
    store, index = MemoryStore(), MerkleIndex()
    writes = index.attach(store, [RecordWrite(record(1).fingerprint, record(1).encode())])
    assert len(writes) == 1 and all(k.startswith(MERKLE_PREFIX) for k, _ in writes[0].extra)
    assert index.root_hex(store) == "00" * 32  # nothing applied yet: one atomic batch
    store.write(writes)
    assert index.root_hex(store) != "00" * 32


def test_rebuild_repairs_a_damaged_tree_and_the_counters() -> None:
    store, index = MemoryStore(), MerkleIndex()
    for i in range(20):
        _write(store, index, i)
    good = index.root_hex(store)
    # Damage: drop half of the tree's nodes and skew a counter, as a crash of a buggy tool might.
    keys = [k for k, _ in store.iter_extra(MERKLE_PREFIX)]
    store.write([RecordWrite(record(0).fingerprint, record(0).encode(),
                             counters={TOMBSTONES_COUNTER: 3},
                             extra=tuple((k, None) for k in keys[::2]))])
    assert index.root_hex(store) != good
    assert index.rebuild(store) == (20, 0)
    assert index.root_hex(store) == good
    assert store.counter(TOMBSTONES_COUNTER) == 0 and store.counter("keys") == 20


def test_rebuild_of_an_empty_store_clears_stale_nodes() -> None:
    store, index = MemoryStore(), MerkleIndex()
    store.write([RecordWrite(bytes(20), None, extra=((MERKLE_PREFIX + b"n", b"junk"),))])
    assert index.rebuild(store) == (0, 0)
    assert list(store.iter_extra(MERKLE_PREFIX)) == []
