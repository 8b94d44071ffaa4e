"""Writes staged for one group commit, and the Store view that read-modify-write functions see.

AsyncStore's writer thread runs a group of queued jobs (plain writes and `run_exclusive`
functions) one after another, staging their writes here instead of writing each one; the group
then commits as ONE store write, so the group shares one fsync. A function later in the group
must see what earlier ones staged (two uploads of keys in the same Merkle bucket both update
that bucket's node), so `StagedView` answers point reads from the staged state first:

- get / get_extra: the last staged value of that key, else the store;
- counter: the store's value plus the staged deltas;
- lookup / iter_records / iter_extra (range reads): these would need the staged index changes
  merged into a scan, so instead the view commits what is staged (`flush`) and reads the store.
  Correct, and it only costs grouping when a function scans after others wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from meshkp.errors import StoreUsageError
from meshkp.store import layout
from meshkp.store.batch import CheckedWrites, counter_values, validate_writes
from meshkp.store.protocol import BulkWrite, IndexKind, RecordWrite, Store


class StagedWrites:
    """Validated writes waiting for their group's commit, indexed for point reads."""

    def __init__(self) -> None:
        self.writes: list[RecordWrite] = []
        self.records: dict[bytes, bytes | None] = {}
        self.extras: dict[bytes, bytes | None] = {}
        self.counter_deltas: dict[str, int] = {}

    def stage(self, writes: Sequence[RecordWrite], current_counter: Callable[[str], int]) -> None:
        """Add writes; StoreUsageError (and nothing staged) if any element is bad."""
        validate_writes(writes)
        counter_values(writes, current_counter)  # would a counter overflow? raises before staging
        for write in writes:
            self.writes.append(write)
            self.records[write.fingerprint] = write.record
            for key, value in write.extra:
                self.extras[key] = value
            for name, delta in write.counters.items():
                self.counter_deltas[name] = self.counter_deltas.get(name, 0) + delta

    def take(self) -> CheckedWrites:
        """All staged writes, in order (validated when staged), leaving this empty."""
        writes = CheckedWrites(self.writes)
        self.writes = []
        self.records = {}
        self.extras = {}
        self.counter_deltas = {}
        return writes


class StagedView:
    """A Store whose writes are staged for the group and whose reads see them (see module doc)."""

    def __init__(self, store: Store, staged: StagedWrites, flush: Callable[[], None]) -> None:
        self._store = store
        self._staged = staged
        self._flush = flush

    def get(self, fingerprint: bytes) -> bytes | None:
        """The staged record of this fingerprint if any, else the stored one."""
        layout.require_bytes("fingerprint", fingerprint)
        if fingerprint in self._staged.records:
            return self._staged.records[fingerprint]
        return self._store.get(fingerprint)

    def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        """Store.lookup after committing what is staged."""
        self._commit_staged()
        return self._store.lookup(kind, term, limit)

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        """Stage writes for the group commit; the run_exclusive call's `sync` decides durability."""
        self._staged.stage(writes, self.counter)

    def iter_records(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Store.iter_records after committing what is staged."""
        self._commit_staged()
        return self._store.iter_records(start)

    def write_bulk(self, bulk: BulkWrite, sync: bool = True) -> None:
        """Store.write_bulk after committing what is staged (bulk rows are not staged)."""
        self._commit_staged()
        self._store.write_bulk(bulk, sync)

    def iter_index(self, start: bytes = b"") -> Iterator[bytes]:
        """Store.iter_index after committing what is staged."""
        self._commit_staged()
        return self._store.iter_index(start)

    def counter(self, name: str) -> int:
        """The stored counter plus the staged deltas."""
        return self._store.counter(name) + self._staged.counter_deltas.get(name, 0)

    def get_extra(self, key: bytes) -> bytes | None:
        """The staged extra value of this key if any, else the stored one."""
        layout.require_bytes("key", key)
        if key in self._staged.extras:
            return self._staged.extras[key]
        return self._store.get_extra(key)

    def iter_extra(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Store.iter_extra after committing what is staged."""
        self._commit_staged()
        return self._store.iter_extra(prefix, start)

    def close(self) -> None:
        """Refused: the store belongs to AsyncStore, which closes it."""
        raise StoreUsageError("a run_exclusive function must not close the store; close AsyncStore")

    def _commit_staged(self) -> None:
        if self._staged.writes:
            self._flush()
