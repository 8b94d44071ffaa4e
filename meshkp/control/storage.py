"""RaftStorage: the Raft core's durable state (hard state, log, snapshot) on meshkp's Store.

Synchronous, like the Store: the driver runs it on the store's writer (AsyncStore) so the event
loop never waits on an fsync. Each call is ONE atomic Store.write, synced when the Ready says
so (Ready.must_sync), so after a crash either all of a Ready's writes are there or none is;
and it happens before the driver sends the Ready's messages.

Keys, under the store's extra namespace and layout.CONTROL_PREFIX:

    CONTROL_PREFIX + b"h"                      hard state     {"t": term, "v": vote, "c": commit}
    CONTROL_PREFIX + b"b"                      log base       [index, term] (the entry before the log)
    CONTROL_PREFIX + b"s"                      snapshot       {"i", "t", "cfg", "d"}
    CONTROL_PREFIX + b"e" + index (u64 BE)     log entry      [index, term, kind, data]

Big-endian indexes sort numerically, so a prefix scan reads the log in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgpack

from meshkp.control.raft.codec import (
    entry_from_obj,
    entry_to_obj,
    hard_state_from_obj,
    hard_state_to_obj,
    snapshot_from_obj,
    snapshot_to_obj,
    uint,
)
from meshkp.control.raft.messages import MAX_ENTRY_BYTES, MAX_SNAPSHOT_BYTES
from meshkp.control.raft.ready import Ready
from meshkp.control.raft.types import Compaction, Entry, HardState, Restored, Snapshot
from meshkp.errors import StoreError, WireError
from meshkp.store.layout import CONTROL_PREFIX
from meshkp.store.protocol import RecordWrite, Store

log = logging.getLogger("meshkp.control")

HARD_STATE_KEY = CONTROL_PREFIX + b"h"
BASE_KEY = CONTROL_PREFIX + b"b"
SNAPSHOT_KEY = CONTROL_PREFIX + b"s"
ENTRY_PREFIX = CONTROL_PREFIX + b"e"

# Store.write takes RecordWrites, which name a record; a write of extra keys only deletes the
# record of the all-zero v4 fingerprint, which no key can have (as the Merkle rebuild does).
_CARRIER_FINGERPRINT = bytes(20)

ExtraWrite = tuple[bytes, bytes | None]


def entry_key(index: int) -> bytes:
    return ENTRY_PREFIX + index.to_bytes(8, "big")


class RaftStorage:
    """Reads and writes one node's Raft state; the only writer of its keys."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Stored log range, kept in step with every write (load() sets it).
        self._first = 1
        self._last = 0

    def load(self) -> Restored:
        """Everything stored, checked; StoreError naming what is inconsistent."""
        try:
            hard = self._get(HARD_STATE_KEY)
            base = self._get(BASE_KEY)
            snap = self._get(SNAPSHOT_KEY)
            hard_state = HardState() if hard is None else hard_state_from_obj(hard)
            base_index, base_term = (0, 0) if base is None else _base(base)
            snapshot = None if snap is None else snapshot_from_obj(snap, MAX_SNAPSHOT_BYTES)
            entries = tuple(entry_from_obj(_unpack(v), MAX_ENTRY_BYTES)
                            for _, v in self.store.iter_extra(ENTRY_PREFIX))
        except WireError as exc:
            raise StoreError(f"the stored Raft state is corrupt: {exc}") from exc
        for offset, entry in enumerate(entries):
            if entry.index != base_index + 1 + offset:
                raise StoreError(f"stored Raft log has a gap: entry {entry.index} where "
                                 f"{base_index + 1 + offset} belongs")
        if snapshot is not None and not base_index <= snapshot.index <= base_index + len(entries):
            raise StoreError(f"stored Raft snapshot at {snapshot.index} is outside the stored log")
        self._first, self._last = base_index + 1, base_index + len(entries)
        log.info("event=raft_storage_loaded term=%d commit=%d base=%d last=%d snapshot=%s",
                 hard_state.term, hard_state.commit, base_index, self._last,
                 snapshot.index if snapshot else "-")
        return Restored(hard_state, snapshot, base_index, base_term, entries)

    def is_empty(self) -> bool:
        """Nothing was ever stored (a new node: bootstrap it or wait to be added)."""
        return self._get(HARD_STATE_KEY) is None and next(self.store.iter_extra(ENTRY_PREFIX), None) is None

    def initialize(self, restored: Restored) -> None:
        """Store a founding state (raft/bootstrap.py) on an empty store; StoreError otherwise."""
        if not self.is_empty():
            raise StoreError("the Raft state is not empty; a node is bootstrapped only once")
        writes: list[ExtraWrite] = [(HARD_STATE_KEY, _pack(hard_state_to_obj(restored.hard_state))),
                                    (BASE_KEY, _pack([restored.base_index, restored.base_term]))]
        if restored.snapshot is not None:
            writes.append((SNAPSHOT_KEY, _pack(snapshot_to_obj(restored.snapshot))))
        writes.extend(self._puts(restored.entries))
        self._write(writes, sync=True)
        self._first = restored.base_index + 1
        self._last = restored.base_index + len(restored.entries)

    def append_forced(self, entry: Entry, hard_state: HardState) -> None:
        """Append a forced recovery's entry (raft/recovery.py) and its hard state, synced.

        Offline only (`meshkp recover`): the entry must follow the stored log (load() first).
        """
        if entry.index != self._last + 1:
            raise StoreError(f"the recovery entry at {entry.index} does not follow the stored log "
                             f"(last entry {self._last}); load the state again")
        self._write([(HARD_STATE_KEY, _pack(hard_state_to_obj(hard_state))),
                     *self._puts([entry])], sync=True)
        self._last = entry.index

    def reset_for_rejoin(self, hard_state: HardState) -> None:
        """Forget the log and snapshot, keep `hard_state`'s term and vote, synced (offline only:
        `meshkp recover --rejoin`, raft/recovery.py). The node then starts as a joiner would,
        but can never vote twice in a term it already voted in."""
        writes: list[ExtraWrite] = [*self._deletes(self._first, self._last), (SNAPSHOT_KEY, None),
                                    (BASE_KEY, None),
                                    (HARD_STATE_KEY, _pack(hard_state_to_obj(
                                        HardState(hard_state.term, hard_state.vote, 0))))]
        self._write(writes, sync=True)
        self._first, self._last = 1, 0

    def save(self, ready: Ready) -> None:
        """Step 1 of the Ready loop: snapshot, hard state and entries in one synced write."""
        writes: list[ExtraWrite] = []
        first, last = self._first, self._last
        if ready.snapshot is not None:
            snap = ready.snapshot
            writes.extend(self._deletes(first, last))
            writes.append((SNAPSHOT_KEY, _pack(snapshot_to_obj(snap))))
            writes.append((BASE_KEY, _pack([snap.index, snap.term])))
            first, last = snap.index + 1, snap.index
        if ready.hard_state is not None:
            writes.append((HARD_STATE_KEY, _pack(hard_state_to_obj(ready.hard_state))))
        if ready.entries:
            start = ready.entries[0].index
            writes.extend(self._deletes(max(start, first), last))
            writes.extend(self._puts(ready.entries))
            last = ready.entries[-1].index
        if writes:
            self._write(writes, sync=ready.must_sync)
        self._first, self._last = first, last

    def save_compaction(self, compaction: Compaction) -> None:
        """Persist a local snapshot (RaftCore.compact) and drop entries up to its base."""
        writes: list[ExtraWrite] = [(SNAPSHOT_KEY, _pack(snapshot_to_obj(compaction.snapshot))),
                                    (BASE_KEY, _pack([compaction.base_index, compaction.base_term]))]
        writes.extend(self._deletes(self._first, min(compaction.base_index, self._last)))
        self._write(writes, sync=True)
        self._first = max(self._first, compaction.base_index + 1)
        self._last = max(self._last, compaction.base_index)

    def snapshot(self) -> Snapshot | None:
        snap = self._get(SNAPSHOT_KEY)
        try:
            return None if snap is None else snapshot_from_obj(snap, MAX_SNAPSHOT_BYTES)
        except WireError as exc:
            raise StoreError(f"the stored Raft snapshot is corrupt: {exc}") from exc

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, key: bytes) -> object:
        raw = self.store.get_extra(key)
        return None if raw is None else _unpack(raw)

    @staticmethod
    def _puts(entries: Sequence[Entry]) -> list[ExtraWrite]:
        return [(entry_key(e.index), _pack(entry_to_obj(e))) for e in entries]

    @staticmethod
    def _deletes(first: int, last: int) -> list[ExtraWrite]:
        return [(entry_key(index), None) for index in range(first, last + 1)]

    def _write(self, writes: list[ExtraWrite], sync: bool) -> None:
        self.store.write([RecordWrite(_CARRIER_FINGERPRINT, None, extra=tuple(writes))], sync=sync)


def _pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _unpack(raw: bytes) -> object:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types
        raise WireError(f"stored value is not msgpack: {exc}") from exc


def _base(obj: object) -> tuple[int, int]:
    if not isinstance(obj, list) or len(obj) != 2:
        raise WireError("the stored log base must be [index, term]")
    return uint(obj[0], "base index"), uint(obj[1], "base term")
