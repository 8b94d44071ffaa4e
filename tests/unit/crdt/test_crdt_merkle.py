"""Merkle tree: bucket formula, incremental updates equal a rebuild, storage seam, corruption."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.errors import CrdtConfigError, MerkleError
from crdt.merkle import (
    EMPTY_HASH,
    EMPTY_SLOT,
    MemoryMerkleStorage,
    MerkleConfig,
    MerkleTree,
    bucket_key,
    bucket_of,
    encode_bucket,
    encode_node,
    node_key,
)

ZERO_ID = bytes(20)  # SHA-256 = de47c9b2...: hex digits d e 4 7, bits 1101 1110 0100 0111


@pytest.mark.parametrize(
    ("item_id", "fanout", "depth", "expected"),
    [
        (ZERO_ID, 16, 4, (0xD, 0xE, 0x4, 0x7)),
        (ZERO_ID, 2, 5, (1, 1, 0, 1, 1)),
        (ZERO_ID, 4, 3, (3, 1, 3)),
        (ZERO_ID, 8, 3, (6, 7, 4)),
        (ZERO_ID, 256, 2, (0xDE, 0x47)),
        (b"fingerprint", 16, 4, (4, 4, 8, 6)),  # SHA-256 = 44863b03...
        (b"\xff", 16, 1, (0xA,)),  # SHA-256 = a8100ae6...
    ],
)
def test_bucket_of_table(
    item_id: bytes, fanout: int, depth: int, expected: tuple[int, ...]
) -> None:
    assert bucket_of(item_id, fanout, depth) == expected


@pytest.mark.parametrize(("fanout", "depth"), [(3, 2), (1, 2), (512, 1), (16, 0), (16, 17)])
def test_config_refuses_bad_geometry(fanout: int, depth: int) -> None:
    with pytest.raises(CrdtConfigError):
        MerkleTree(MemoryMerkleStorage(), MerkleConfig(fanout, depth))


def _tree(config: MerkleConfig | None = None) -> tuple[MerkleTree, MemoryMerkleStorage]:
    storage = MemoryMerkleStorage()
    return MerkleTree(storage, config), storage


def _built(items: dict[bytes, bytes], config: MerkleConfig) -> MemoryMerkleStorage:
    tree, storage = _tree(config)
    batch = tree.batch()
    for item_id, digest in items.items():
        batch.put(item_id, digest)
    storage.apply(batch.writes())
    return storage


def test_empty_tree() -> None:
    tree, storage = _tree()
    assert tree.root() == EMPTY_HASH and len(tree) == 0
    assert tree.children(()) == (EMPTY_SLOT,) * 16 and tree.entries() == []
    assert tree.delete(b"x" * 20) == [] and storage.data == {}


def test_one_update_writes_one_bucket_and_depth_nodes() -> None:
    tree, storage = _tree()
    item_id = ZERO_ID
    writes = tree.update(item_id, b"d" * 32)
    path = (0xD, 0xE, 0x4, 0x7)
    expected_keys = [bucket_key(path)] + [node_key(path[:level]) for level in (3, 2, 1, 0)]
    assert [key for key, _ in writes] == expected_keys
    assert storage.data == {}, "the tree must not write by itself"
    storage.apply(writes)
    assert tree.get(item_id) == b"d" * 32 and len(tree) == 1
    assert tree.update(item_id, b"d" * 32) == [], "an unchanged digest costs no write"
    # Root = H("N" + root node bytes); the root node holds child 0xD's slot and 15 empty ones.
    assert tree.root() == hashlib.sha256(b"N" + storage.data[node_key(())]).digest()
    assert tree.slot((0xD,)) == tree.children(())[0xD] and tree.slot((0xD,)).size == 1
    assert storage.data[bucket_key(path)] == encode_bucket({item_id: b"d" * 32})
    storage.apply(tree.delete(item_id))
    assert storage.data == {} and tree.root() == EMPTY_HASH, "deleting the last id leaves nothing"


OPS = st.lists(
    st.tuples(st.integers(0, 40), st.none() | st.sampled_from([b"1", b"2", b"3"])), max_size=60
)


@settings(max_examples=80, deadline=None)
@given(ops=OPS, fanout=st.sampled_from([2, 4, 16]), depth=st.integers(1, 3))
def test_incremental_updates_equal_a_rebuild(ops, fanout: int, depth: int) -> None:
    config = MerkleConfig(fanout, depth)
    tree, storage = _tree(config)
    expected: dict[bytes, bytes] = {}
    for key, digest in ops:
        item_id = key.to_bytes(2, "big")
        if digest is None:
            storage.apply(tree.delete(item_id))
            expected.pop(item_id, None)
        else:
            storage.apply(tree.update(item_id, digest))
            expected[item_id] = digest
    assert storage.data == _built(expected, config).data, "incremental != rebuild"
    reordered = _built(dict(reversed(list(expected.items()))), config)
    assert reordered.data == storage.data, "storage depends on insertion order"
    assert dict(tree.entries()) == expected and len(tree) == len(expected)
    for path in [(), *[(i,) for i in range(fanout)]][: depth + 1]:
        if len(path) < depth:
            assert sum(slot.size for slot in tree.children(path)) == tree.slot(path).size


def test_batch_rewrites_each_node_once_and_is_single_use() -> None:
    tree, storage = _tree(MerkleConfig(4, 2))
    batch = tree.batch()
    for i in range(100):
        batch.put(i.to_bytes(2, "big"), b"x")
    writes = batch.writes()
    keys = [key for key, _ in writes]
    assert len(keys) == len(set(keys)) == 16 + 4 + 1
    with pytest.raises(MerkleError):
        batch.put(b"late", b"x")
    with pytest.raises(MerkleError):
        batch.writes()


def test_refuses_bad_ids_and_corrupt_nodes() -> None:
    tree, storage = _tree()
    for bad_id, digest in ((b"", b"d"), (b"x" * 65, b"d"), (b"x", b""), ("str", b"d")):
        with pytest.raises(MerkleError):
            tree.update(bad_id, digest)  # type: ignore[arg-type]
    storage.data[node_key(())] = b"short"
    with pytest.raises(MerkleError, match="corrupt"):
        tree.root()
    storage.data[bucket_key((1, 2, 3, 4))] = b"\x91\xc4\x01x"  # odd-length list
    with pytest.raises(MerkleError, match="corrupt"):
        tree.bucket((1, 2, 3, 4))
    with pytest.raises(MerkleError):
        tree.children((1, 2, 3, 4))  # a bucket path is not an inner node
    assert encode_node([EMPTY_SLOT]) == bytes(36)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.binary(min_size=1, max_size=40)),
             max_size=300),
    st.sampled_from([(16, 4), (2, 5), (4, 3), (256, 1), (16, 1)]),
)
def test_a_bulk_build_stores_the_same_bytes_as_one_batch(
    pairs: list[tuple[bytes, bytes]], geometry: tuple[int, int]
) -> None:
    from crdt.merkle import build_nodes

    config = MerkleConfig(*geometry)
    storage = MemoryMerkleStorage()
    batch = MerkleTree(storage, config).batch()
    for item_id, digest in pairs:
        batch.put(item_id, digest)
    storage.apply(batch.writes())
    assert build_nodes(pairs, config) == storage.data


def test_a_bulk_build_refuses_what_a_batch_refuses() -> None:
    from crdt.merkle import build_nodes

    with pytest.raises(MerkleError):
        build_nodes([(b"", b"digest")], MerkleConfig())
    with pytest.raises(MerkleError):
        build_nodes([(b"id", b"x" * 65)], MerkleConfig())
