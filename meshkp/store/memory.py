"""MemoryStore: the Store contract in dicts, for unit tests and simulations.

It shares validation and apply order with LevelDBStore (meshkp/store/batch.py) and is held to
the same contract suite (tests/unit/store/test_contract.py), so a simulation that passes on it
behaves the same on disk. Iteration is over a snapshot taken at the call, as LevelDBStore's.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from meshkp.errors import StoreClosed
from meshkp.store import layout
from meshkp.store.batch import apply_bulk, apply_writes
from meshkp.store.protocol import BulkWrite, IndexKind, RecordWrite


class _SortedDict:
    """A dict whose keys can be walked in order; the order is rebuilt only after a key set change."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self._order: list[bytes] = []
        self._stale = False

    def set(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            if self.values.pop(key, None) is not None:
                self._stale = True
        else:
            if key not in self.values:
                self._stale = True
            self.values[key] = value

    def items_from(self, start: bytes, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """(key, value) pairs with key >= start and starting with prefix, in key order (a copy)."""
        if self._stale:
            self._order = sorted(self.values)
            self._stale = False
        order = self._order
        position = bisect.bisect_left(order, max(start, prefix))
        out: list[tuple[bytes, bytes]] = []
        for key in order[position:]:
            if not key.startswith(prefix):
                break
            out.append((key, self.values[key]))
        return out


class MemoryStore:
    """Store in memory with LevelDBStore's semantics; thread-safe, so AsyncStore can drive it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records = _SortedDict()
        self._index: dict[tuple[IndexKind, bytes], set[bytes]] = {}
        self._counters: dict[str, int] = {}
        self._extras = _SortedDict()
        self._closed = False

    def get(self, fingerprint: bytes) -> bytes | None:
        """The encoded record of a primary fingerprint, or None."""
        layout.require_bytes("fingerprint", fingerprint)
        with self._lock:
            self._check_open()
            return self._records.values.get(fingerprint)

    def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        """Primary fingerprints indexed under `term`, in fingerprint order, at most `limit`."""
        kind = layout.require_kind(kind)
        layout.require_bytes("term", term)
        layout.require_limit(limit)
        with self._lock:
            self._check_open()
            return sorted(self._index.get((kind, term), ()))[:limit]

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        """Apply all writes, in order, as one atomic batch (sync has nothing to flush here)."""
        with self._lock:
            self._check_open()
            batch = _MemoryBatch(self)
            apply_writes(writes, batch, self._counter)
            batch.apply()

    def iter_records(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(fingerprint, record) pairs in fingerprint order from `start`, as of the first next()."""
        layout.require_bytes("start", start)
        return self._scan(self._records, start, b"")

    def write_bulk(self, bulk: BulkWrite, sync: bool = True) -> None:
        """Apply a BulkWrite as one atomic batch."""
        with self._lock:
            self._check_open()
            batch = _MemoryBatch(self)
            apply_bulk(bulk, batch, self._counter)
            batch.apply()

    def iter_index(self, start: bytes = b"") -> Iterator[bytes]:
        """Every index entry in key order from `start`, as of the first next()."""
        layout.require_bytes("start", start)
        return self._index_entries(start)

    def _index_entries(self, start: bytes) -> Iterator[bytes]:
        with self._lock:  # the snapshot, at the first next() as LevelDBStore's
            self._check_open()
            entries = sorted(layout.index_entry(kind, term, fingerprint)
                             for (kind, term), members in self._index.items()
                             for fingerprint in members)
        position = bisect.bisect_left(entries, start)
        for entry in entries[position:]:
            self._check_open()
            yield entry

    def counter(self, name: str) -> int:
        """A counter kept in the same batches as the records; 0 if never written."""
        with self._lock:
            self._check_open()
            return self._counter(name)

    def get_extra(self, key: bytes) -> bytes | None:
        """A value written through RecordWrite.extra."""
        layout.require_bytes("key", key)
        with self._lock:
            self._check_open()
            return self._extras.values.get(key)

    def iter_extra(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of extra keys under a prefix, in key order from `start`, as of the first next()."""
        layout.require_bytes("prefix", prefix)
        layout.require_bytes("start", start)
        return self._scan(self._extras, start, prefix)

    def close(self) -> None:
        """Drop the data (idempotent); further calls raise StoreClosed."""
        with self._lock:
            self._closed = True
            self._records = _SortedDict()
            self._index = {}
            self._counters = {}
            self._extras = _SortedDict()

    def _scan(
        self, table: _SortedDict, start: bytes, prefix: bytes
    ) -> Iterator[tuple[bytes, bytes]]:
        # A generator, so the copy (the snapshot) is taken at the first next(), as LevelDBStore.
        with self._lock:
            self._check_open()
            rows = table.items_from(start, prefix)
        for row in rows:
            self._check_open()  # LevelDBStore raises too once the store is closed
            yield row

    def _counter(self, name: str) -> int:
        return self._counters.get(name, 0)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the memory store is closed; create a new MemoryStore")


class _MemoryBatch:
    """Collects a batch's effects so they apply together, after validation succeeded."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._effects: list[Callable[[], None]] = []

    def set_record(self, fingerprint: bytes, record: bytes | None) -> None:
        self._effects.append(partial(self._store._records.set, fingerprint, record))

    def set_index(self, kind: IndexKind, term: bytes, fingerprint: bytes, present: bool) -> None:
        # IndexKind("e") normalises a one-letter kind: "e" and IndexKind.EMAIL hash differently.
        term_key = (IndexKind(kind), term)
        self._effects.append(partial(_set_index, self._store._index, term_key, fingerprint, present))

    def add_index_entries(self, entries: Sequence[bytes]) -> None:
        for entry in entries:
            split = layout.split_index_entry(entry)
            assert split is not None  # apply_bulk checked it
            kind, term, fingerprint = split
            self.set_index(kind, term, fingerprint, True)  # type: ignore[arg-type]

    def set_extra(self, key: bytes, value: bytes | None) -> None:
        self._effects.append(partial(self._store._extras.set, key, value))

    def set_counter(self, name: str, value: int) -> None:
        self._effects.append(partial(self._store._counters.__setitem__, name, value))

    def apply(self) -> None:
        for effect in self._effects:
            effect()


def _set_index(
    index: dict[tuple[IndexKind, bytes], set[bytes]],
    term: tuple[IndexKind, bytes],
    fingerprint: bytes,
    present: bool,
) -> None:
    members = index.get(term)
    if present:
        if members is None:
            index[term] = members = set()
        members.add(fingerprint)
    elif members is not None:
        members.discard(fingerprint)
        if not members:
            del index[term]
