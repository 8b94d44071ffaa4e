"""The `Store` protocol: records by fingerprint, lookup indexes, counters, one atomic batch per change.

The store knows nothing of OpenPGP: callers hand it encoded records and the index terms
computed by meshkp.keys.terms. LevelDBStore and MemoryStore implement it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class IndexKind(str, Enum):
    """Lookup indexes. Subkey fingerprints and IDs go into the same indexes as primary ones."""

    FINGERPRINT = "f"  # 20-byte v4 or 32-byte v6 fingerprint (primary and subkeys)
    KEY_ID64 = "k"  # 8-byte key ID
    KEY_ID32 = "s"  # 4-byte short key ID
    EMAIL = "e"  # exact address, lowercased, UTF-8
    KEYWORD = "w"  # lowercased words of user IDs, e-mail, local part, domain
    SKS_DIGEST = "d"  # 16-byte SKS MD5 digest of the live packets (op=hget, /pks/hashquery)


IndexTerm = tuple[IndexKind, bytes]


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One key's change: its new encoded record (None deletes it) and index terms to move.

    `fingerprint` is raw bytes (16, 20 or 32: v3, v4, v6), never hex text.
    `old_terms` are removed and `new_terms` added (terms in both stay).
    `counters` are deltas added to named counters ({"keys": +1} for a new key).
    `extra` carries other keys to write in the same batch (e.g. Merkle tree nodes), in their
    own namespace, so they never collide with records; a value of None deletes that key.
    """

    fingerprint: bytes
    record: bytes | None
    old_terms: frozenset[IndexTerm] = frozenset()
    new_terms: frozenset[IndexTerm] = frozenset()
    counters: Mapping[str, int] = field(default_factory=dict)
    extra: Sequence[tuple[bytes, bytes | None]] = ()


@dataclass(frozen=True, slots=True)
class BulkWrite:
    """Rows copied as they are from another store (a snapshot bootstrap), in one atomic batch.

    Nothing is derived here: `records` are (fingerprint, encoded record) puts, `index` are
    encoded index entries (layout.index_entry, as `Store.iter_index` gives them) to add,
    `counters` deltas and `extra` caller keys as in RecordWrite. The caller keeps the Merkle
    tree and the counters true to the records (meshkp/replication/snapshot.py rebuilds them).
    """

    records: Sequence[tuple[bytes, bytes]] = ()
    index: Sequence[bytes] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    extra: Sequence[tuple[bytes, bytes | None]] = ()


class Store(Protocol):
    """Synchronous store; meshkp/store/executor.py runs it off the event loop.

    Reads may run on many threads at once. Writes must come from one writer at a time
    (counters are read-modify-write); AsyncStore guarantees it. Bad arguments raise
    StoreUsageError and change nothing; use after close() raises StoreClosed.
    """

    def get(self, fingerprint: bytes) -> bytes | None:
        """The encoded record of a primary fingerprint, or None."""

    def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        """Primary fingerprints indexed under `term`, in fingerprint order, at most `limit`."""

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        """Apply all writes, in order, as one atomic batch; with sync, durable before returning."""

    def iter_records(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(fingerprint, record) pairs in fingerprint order from `start` (inclusive)."""

    def write_bulk(self, bulk: BulkWrite, sync: bool = True) -> None:
        """Apply a BulkWrite as one atomic batch; StoreUsageError (nothing written) if any row is bad."""

    def iter_index(self, start: bytes = b"") -> Iterator[bytes]:
        """Every index entry (layout.index_entry) in key order from `start` (inclusive)."""

    def counter(self, name: str) -> int:
        """A counter kept in the same batches as the records (e.g. "keys"); 0 if never written."""

    def get_extra(self, key: bytes) -> bytes | None:
        """A value written through RecordWrite.extra."""

    def iter_extra(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of extra keys under a prefix, in key order, from `start` (inclusive)."""

    def close(self) -> None:
        """Release the database (idempotent); further calls raise StoreClosed."""
