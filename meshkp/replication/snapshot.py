"""Snapshot bootstrap: an empty node copies a peer's stored records and index entries as they are.

An anti-entropy pull decodes, re-encodes and indexes every record (~60 us a key of CPU, and
the Merkle tree updated page by page). A new node needs none of that: the peer's rows are
already canonical and indexed. So it copies them:

1. records: the peer's records in fingerprint order, page by page (SnapshotRead part "r"),
   each checked structurally (snapshot_check.py) and written as it came, with the key and
   tombstone counters, by `Store.write_bulk`. A record this node already holds (a push that
   arrived meanwhile, or a far-behind store) is not overwritten: it goes through the normal
   validated join (Replicator.apply_pulled) instead;
2. index: the peer's index entries in key order (part "i"), each checked to be a well-formed
   entry, written as they came. An entry of a key this node committed itself during the
   bootstrap (a push, a join) is skipped: that commit computed the key's terms from its own
   state, and the peer's may be of an older one;
3. merkle: the Merkle tree and counters are rebuilt from the records in one pass
   (MerkleIndex.rebuild), and the cursor is cleared.
The anti-entropy round it runs in then goes on with a Merkle diff against the same peer,
which pulls (through the validated path) whatever changed there during the copy.

The cursor (part, last key copied, peer) is written in the same batch as each page, so an
interrupted bootstrap resumes where it stopped, after a restart too, from any peer: keys are
in the same order on every node, and the final diff repairs what differs. The node serves
reads meanwhile from what it has; `progress` says it is bootstrapping (/cluster/sync/status,
/cluster/status and /cluster/health).

Pages are pipelined: the next page is asked for while the current one is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import msgpack

from meshkp.errors import InvalidPeerRecord, ReplicationError, StoreUsageError, WireError
from meshkp.keys.commit import Commit, Committer
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.merkle_index import TOMBSTONES_COUNTER
from meshkp.replication.messages import (
    MAX_SNAPSHOT_ROWS,
    SNAPSHOT_INDEX,
    SNAPSHOT_RECORDS,
    SnapshotPage,
    SnapshotRead,
    SyncError,
)
from meshkp.replication.peers import ByteMeter, Channel, PeerRef
from meshkp.replication.snapshot_check import check_snapshot_record
from meshkp.replication.status import ReplicationCounters
from meshkp.store import layout
from meshkp.store.protocol import BulkWrite, Store

log = logging.getLogger(__name__)

# The extra key of the bootstrap cursor: msgpack [part, after, peer]. Present from the first
# page until the Merkle tree is rebuilt.
CURSOR_KEY = b"bs"
MERKLE = "m"  # the cursor's part once both copies are done: the tree is rebuilt next
# Keys committed by the normal path during one bootstrap whose peer index entries are skipped.
# Past this many, the set is not grown further (the final diff still repairs records; only
# those keys' terms may then hold an older state's terms as well).
_MAX_TOUCHED = 1_000_000

ApplyRecords = Callable[[Sequence[bytes]], Awaitable[int]]


@dataclass(slots=True)
class BootstrapProgress:
    """The bootstrap running now, as status shows it."""

    peer: str
    phase: str  # "records" -> "index" -> "merkle"
    started: float
    total: int = 0  # records the peer holds
    records: int = 0  # records copied (or joined) so far, this run
    index_entries: int = 0
    refused: int = 0  # rows that failed a check: counted, logged, never stored

    def to_json(self) -> dict[str, object]:
        return {"peer": self.peer, "phase": self.phase, "total": self.total,
                "records": self.records, "index_entries": self.index_entries,
                "refused": self.refused}


_PHASES = {SNAPSHOT_RECORDS: "records", SNAPSHOT_INDEX: "index", MERKLE: "merkle"}


def read_page(store: Store, request: SnapshotRead, budget: int) -> SnapshotPage:
    """The responder's page: rows after the cursor up to `budget` bytes (runs on a reader)."""
    start = request.after + b"\x00" if request.after else b""
    rows: Iterator[tuple[bytes, bytes]] = store.iter_records(start)
    total = store.counter(KEYS_COUNTER) + store.counter(TOMBSTONES_COUNTER)
    if request.part == SNAPSHOT_INDEX:
        return _index_page(store.iter_index(start), budget, total)
    found: list[bytes] = []
    used = 0
    last = b""
    for key, row in rows:
        if found and (len(found) >= MAX_SNAPSHOT_ROWS or used + len(row) > budget):
            return SnapshotPage(request.part, tuple(found), last, total)
        found.append(row)
        used += len(row)
        last = key
    return SnapshotPage(request.part, tuple(found), b"", total)


def _index_page(entries: Iterator[bytes], budget: int, total: int) -> SnapshotPage:
    """A page of index entries, taken a slice at a time (~35 bytes each, 1.5 million for
    100,000 keys: a per-entry loop here would cost more than reading them)."""
    found: list[bytes] = []
    used = 0
    while len(found) < MAX_SNAPSHOT_ROWS:
        chunk = list(islice(entries, min(4096, MAX_SNAPSHOT_ROWS - len(found))))
        if not chunk:
            return SnapshotPage(SNAPSHOT_INDEX, tuple(found), b"", total)
        size = sum(map(len, chunk))
        if used + size > budget:  # the last slice: as many entries as fit (at least one)
            for entry in chunk:
                if found and used + len(entry) > budget:
                    return SnapshotPage(SNAPSHOT_INDEX, tuple(found), found[-1], total)
                found.append(entry)
                used += len(entry)
        else:
            found.extend(chunk)
            used += size
    if next(entries, None) is None:  # it ended exactly here
        return SnapshotPage(SNAPSHOT_INDEX, tuple(found), b"", total)
    return SnapshotPage(SNAPSHOT_INDEX, tuple(found), found[-1], total)


class Bootstrap:
    """Copies a peer's store into this node's (see the module doc)."""

    def __init__(self, store: Any, committer: Committer, channel: Channel, timeout_s: float,
                 apply_records: ApplyRecords, counters: ReplicationCounters) -> None:
        self.store = store  # meshkp.store.executor.AsyncStore
        self.committer = committer
        self.counters = counters
        self.channel = channel
        self.timeout_s = timeout_s
        self.apply_records = apply_records
        self.progress: BootstrapProgress | None = None
        self.pages_read = 0  # pages the last run received (0: the peer may not speak snapshot)
        self._touched: set[bytes] = set()
        committer.observe(self._on_commit)

    def _on_commit(self, commit: Commit) -> None:
        if self.progress is not None and len(self._touched) < _MAX_TOUCHED:
            self._touched.update(commit.states)

    async def cursor(self) -> tuple[str, bytes] | None:
        """The persisted (part, after) of an unfinished bootstrap, or None."""
        raw = await self.store.read(lambda store: store.get_extra(CURSOR_KEY))
        if raw is None:
            return None
        return _decode_cursor(raw) or (SNAPSHOT_RECORDS, b"")  # unreadable: start over

    async def copying_records(self) -> bool:
        """Whether a copy is unfinished here and has stored records already."""
        def read(store: Store) -> bool:
            if store.get_extra(CURSOR_KEY) is None:
                return False
            return next(iter(store.iter_records()), None) is not None

        copying: bool = await self.store.read(read)
        return copying

    async def run(self, peer: PeerRef, meter: ByteMeter, resume: tuple[str, bytes] | None) -> int:
        """Copy `peer`'s store from the cursor `resume` (None: from the start); records copied."""
        part, after = resume or (SNAPSHOT_RECORDS, b"")
        progress = self.progress = BootstrapProgress(peer.node_id, _PHASES[part], time.time())
        self._touched = set()
        self.pages_read = 0
        log.info("event=bootstrap_started peer=%s phase=%s resumed=%s",
                 peer.node_id, progress.phase, resume is not None)
        began = time.monotonic()
        try:
            if part == SNAPSHOT_RECORDS:
                await self._copy(peer, meter, SNAPSHOT_RECORDS, after)
                part, after = SNAPSHOT_INDEX, b""
            if part == SNAPSHOT_INDEX:
                progress.phase = _PHASES[SNAPSHOT_INDEX]
                await self._copy(peer, meter, SNAPSHOT_INDEX, after)
            progress.phase = _PHASES[MERKLE]
            records, _tombstones = await self.store.run_exclusive(self._finish)
        finally:
            self.progress = None
            self._touched = set()
        log.info("event=bootstrap_done peer=%s records=%d copied=%d index_entries=%d "
                 "refused=%d s=%.3f", peer.node_id, records, progress.records,
                 progress.index_entries, progress.refused, time.monotonic() - began)
        return progress.records

    def _finish(self, store: Store) -> tuple[int, int]:
        counts: tuple[int, int] = self.committer.merkle.rebuild(store)
        store.write_bulk(BulkWrite(extra=[(CURSOR_KEY, None)]))
        return counts

    async def _copy(self, peer: PeerRef, meter: ByteMeter, part: str, after: bytes) -> None:
        """Every page of `part` after `after`, the next one read while one is written."""
        reading: asyncio.Task[SnapshotPage] | None = asyncio.create_task(
            self._read(peer, meter, part, after))
        try:
            while reading is not None:
                page = await reading
                reading = None
                if page.next:
                    reading = asyncio.create_task(self._read(peer, meter, part, page.next))
                if part == SNAPSHOT_RECORDS:
                    await self._write_records(page, after)
                else:
                    await self._write_index(page, after)
                # The rows bypassed the commit path: lookups cached meanwhile are stale.
                self.committer.bulk_written()
                after = page.next
        finally:
            if reading is not None:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)

    async def _read(self, peer: PeerRef, meter: ByteMeter, part: str, after: bytes) -> SnapshotPage:
        reply = await self.channel.request(peer, SnapshotRead(part, after), self.timeout_s, meter)
        if isinstance(reply, SyncError):
            raise ReplicationError(f"{peer.node_id} refused a snapshot read: {reply.reason}")
        if not isinstance(reply, SnapshotPage) or reply.part != part:
            raise WireError(f"{peer.node_id} answered a snapshot read with {type(reply).__name__}")
        if reply.next and (not reply.rows or reply.next <= after):
            raise WireError(f"{peer.node_id} answered a snapshot read without moving on")
        assert self.progress is not None
        self.progress.total = reply.total
        self.pages_read += 1
        return reply

    def _next_cursor(self, part: str, page: SnapshotPage, peer: str) -> bytes:
        if page.next:
            return _encode_cursor(part, page.next, peer)
        return _encode_cursor(SNAPSHOT_INDEX if part == SNAPSHOT_RECORDS else MERKLE, b"", peer)

    async def _write_records(self, page: SnapshotPage, after: bytes) -> None:
        progress = self.progress
        assert progress is not None
        limits = self.committer.limits
        cursor = self._next_cursor(SNAPSHOT_RECORDS, page, progress.peer)
        upper = page.next

        def write(store: Store) -> tuple[list[bytes], list[str]]:
            rows: list[tuple[bytes, bytes]] = []
            held: list[bytes] = []
            errors: list[str] = []
            live = deleted = 0
            previous = after
            for data in page.rows:
                try:
                    fingerprint, is_live, is_deleted = check_snapshot_record(data, limits)
                    if fingerprint <= previous or (upper and fingerprint > upper):
                        raise InvalidPeerRecord("record out of fingerprint order in a snapshot page")
                except InvalidPeerRecord as exc:
                    errors.append(str(exc))
                    continue
                previous = fingerprint
                stored = store.get(fingerprint)
                if stored is None:
                    rows.append((fingerprint, data))
                    live += is_live
                    deleted += is_deleted
                elif stored != data:
                    held.append(data)
            counters = {name: n for name, n in ((KEYS_COUNTER, live), (TOMBSTONES_COUNTER, deleted)) if n}
            store.write_bulk(BulkWrite(records=rows, counters=counters,
                                       extra=[(CURSOR_KEY, cursor)]), sync=False)
            return held, errors

        held, errors = await self.store.run_exclusive(write, sync=False)
        self._refused(errors, "record")
        progress.records += len(page.rows) - len(errors) - len(held)
        for data in held:  # held here in another state: the validated join, one at a time
            try:
                await self.apply_records([data])
                progress.records += 1
            except InvalidPeerRecord as exc:
                self._refused([str(exc)], "record")

    async def _write_index(self, page: SnapshotPage, after: bytes) -> None:
        progress = self.progress
        assert progress is not None
        cursor = self._next_cursor(SNAPSHOT_INDEX, page, progress.peer)
        touched = self._touched
        upper = page.next

        def write(store: Store) -> list[str]:
            rows = page.rows
            # ~15 entries a key. The common page (in order, every entry sound) is checked by C
            # loops and by write_bulk itself; any other is sifted entry by entry.
            if _in_order(rows, after, upper):
                entries = [e for e in rows if _entry_fingerprint(e) not in touched] if touched else rows
                try:
                    store.write_bulk(BulkWrite(index=entries, extra=[(CURSOR_KEY, cursor)]),
                                     sync=False)
                    return []
                except StoreUsageError:
                    pass  # a malformed entry: nothing was written; sift them
            kept: list[bytes] = []
            errors: list[str] = []
            previous = after
            is_entry = layout.is_index_entry
            for entry in rows:
                if entry <= previous or (upper and entry > upper) or not is_entry(entry):
                    errors.append("malformed or out-of-order index entry")
                    continue
                previous = entry
                if _entry_fingerprint(entry) not in touched:
                    kept.append(entry)
            store.write_bulk(BulkWrite(index=kept, extra=[(CURSOR_KEY, cursor)]), sync=False)
            return errors

        errors = await self.store.run_exclusive(write, sync=False)
        self._refused(errors, "index entry")
        progress.index_entries += len(page.rows) - len(errors)

    def _refused(self, errors: list[str], what: str) -> None:
        if not errors:
            return
        assert self.progress is not None
        self.progress.refused += len(errors)
        self.counters.records_rejected += len(errors)
        log.warning("event=bootstrap_rows_refused peer=%s what=%s count=%d first=%s",
                    self.progress.peer, what, len(errors), errors[0])


def _in_order(rows: Sequence[bytes], after: bytes, upper: bytes) -> bool:
    """Whether rows are strictly increasing, after `after` and (unless b"") up to `upper`."""
    if not rows:
        return True
    if rows[0] <= after or (upper and rows[-1] > upper):
        return False
    return all(map(bytes.__lt__, rows, islice(rows, 1, None)))


def _entry_fingerprint(entry: bytes) -> bytes:
    return entry[3 + ((entry[1] << 8) | entry[2]):]


def _encode_cursor(part: str, after: bytes, peer: str) -> bytes:
    data: bytes = msgpack.packb([part, after, peer], use_bin_type=True)
    return data


def _decode_cursor(raw: bytes) -> tuple[str, bytes] | None:
    """(part, after) of a stored cursor; None (start over) if it is not one."""
    try:
        part, after, _peer = msgpack.unpackb(raw, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if part not in _PHASES or not isinstance(after, bytes):
        return None
    return part, after
