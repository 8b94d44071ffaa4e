"""The persisted Merkle tree over fingerprint -> state hash, updated in the record's own batch.

DESIGN.md "Replication": the tree's nodes live in the store's extra namespace under
MERKLE_PREFIX, and every change of a record carries the Merkle writes for it in the same
RecordWrite batch (`RecordWrite.extra`, attached by the commit path, meshkp/keys/commit.py), so
the tree never disagrees with the records after a crash; anti-entropy reads it. The leaf
digest of a record is SHA-256 of its encoded bytes, which is `KeyRecord.state_hash()` (the
encoding is deterministic).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Sequence

import msgpack

from crdt.merkle import MerkleConfig, MerkleTree, build_nodes
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.record import RECORD_FORMAT, Tombstone
from meshkp.store.protocol import BulkWrite, RecordWrite, Store

log = logging.getLogger(__name__)

MERKLE_PREFIX = b"mk"
TOMBSTONES_COUNTER = "tombstones"

ExtraWrite = tuple[bytes, bytes | None]


def state_hash(encoded_record: bytes) -> bytes:
    """The Merkle leaf digest of an encoded record (== KeyRecord.state_hash())."""
    return hashlib.sha256(encoded_record).digest()


def is_tombstoned(encoded_record: bytes) -> bool:
    """Whether an encoded record is deleted (a tombstone that stands, not one a resolution
    lifted), without parsing its packets."""
    return _flags(encoded_record)[1]


def _flags(encoded_record: bytes) -> tuple[bool, bool]:
    """(live, deleted) of an encoded record, as record_write counts them."""
    fmt, _fp, cert, _vv, tomb = msgpack.unpackb(encoded_record, raw=False)
    if fmt != RECORD_FORMAT:
        return False, False
    # Only a lifted tombstone has a fifth field that is not None; decode just those (rare).
    deleted = tomb is not None and (len(tomb) < 5 or tomb[4] is None
                                    or Tombstone.from_obj(tomb).active)
    return cert is not None and not deleted, deleted


class StoreMerkleStorage:
    """crdt.merkle.MerkleStorage over a Store's extra keys (reads only; writes go in batches)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: bytes) -> bytes | None:
        """The tree node stored under `key`, or None."""
        return self._store.get_extra(MERKLE_PREFIX + key)


class MerkleIndex:
    """Computes Merkle writes for record changes and reads the tree of a store."""

    def __init__(self, config: MerkleConfig | None = None) -> None:
        self.config = config or MerkleConfig()
        self.config.validate()

    def tree(self, store: Store) -> MerkleTree:
        """The tree as stored in `store` (read through it, so a staged view sees staged nodes)."""
        return MerkleTree(StoreMerkleStorage(store), self.config)

    def root_hex(self, store: Store) -> str:
        """The root hash as hex (all zeros for an empty tree)."""
        return self.tree(store).root().hex()

    def size(self, store: Store) -> int:
        """Ids in the tree (records, tombstones included)."""
        return len(self.tree(store))

    def writes(self, store: Store, changes: Iterable[tuple[bytes, bytes | None]]) -> list[ExtraWrite]:
        """Extra writes moving the tree to the new records (None: record removed)."""
        batch = self.tree(store).batch()
        for fingerprint, record in changes:
            if record is None:
                batch.delete(fingerprint)
            else:
                batch.put(fingerprint, state_hash(record))
        return [(MERKLE_PREFIX + key, value) for key, value in batch.writes()]

    def attach(self, store: Store, writes: Sequence[RecordWrite]) -> list[RecordWrite]:
        """`writes` with the Merkle updates they imply added to the last one's extra."""
        if not writes:
            return []
        extra = self.writes(store, ((w.fingerprint, w.record) for w in writes))
        out = list(writes)
        last = out[-1]
        out[-1] = dataclasses.replace(last, extra=(*last.extra, *extra))
        return out

    def rebuild(self, store: Store) -> tuple[int, int]:
        """Recompute the tree and the key/tombstone counters from the records; one batch.

        Run it inside AsyncStore.run_exclusive. Returns (records, tombstones).
        """
        leaves: list[tuple[bytes, bytes]] = []
        tombstones = keys = 0
        for fingerprint, data in store.iter_records():
            leaves.append((fingerprint, state_hash(data)))
            live, deleted = _flags(data)
            keys += live
            tombstones += deleted
        fresh = build_nodes(leaves, self.config)
        old_keys = [key for key, _ in store.iter_extra(MERKLE_PREFIX)]
        extra: list[ExtraWrite] = [
            (key, None) for key in old_keys if key[len(MERKLE_PREFIX):] not in fresh
        ]
        extra.extend((MERKLE_PREFIX + key, value) for key, value in sorted(fresh.items()))
        counters = {
            KEYS_COUNTER: keys - store.counter(KEYS_COUNTER),
            TOMBSTONES_COUNTER: tombstones - store.counter(TOMBSTONES_COUNTER),
        }
        store.write_bulk(BulkWrite(counters={k: v for k, v in counters.items() if v}, extra=extra))
        log.info("event=merkle_rebuilt records=%d tombstones=%d nodes=%d",
                 len(leaves), tombstones, len(fresh))
        return len(leaves), tombstones
