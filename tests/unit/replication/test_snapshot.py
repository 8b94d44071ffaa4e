"""Snapshot bootstrap (meshkp/replication/snapshot.py): copy, resume, and a garbage-sending peer."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest

from meshkp.keys.parse import KeyParser
from meshkp.keys.query import parse_query
from meshkp.keys.service import KeyService
from meshkp.replication import snapshot
from meshkp.replication.messages import (
    SNAPSHOT_INDEX,
    SNAPSHOT_RECORDS,
    SnapshotPage,
    SnapshotRead,
    SyncError,
)
from meshkp.replication.peers import PeerRef
from meshkp.store import layout
from meshkp.store.protocol import BulkWrite, IndexKind

from .helpers import LIMITS, Mesh, certificate, record, with_vv

N0 = PeerRef("n0", ("127.0.0.1", 0))


class Wrapped:
    """n0's replicator behind a hook that may answer (or refuse) a request itself."""

    def __init__(self, inner: Any, hook: Any) -> None:
        self.inner, self.hook = inner, hook

    async def handle(self, sender: str | None, message: Any) -> Any:
        answer = await self.hook(message)
        return answer if answer is not None else await self.inner.handle(sender, message)


async def _seeded(n: int) -> Mesh:
    mesh = Mesh(2)
    mesh.net.down.add("n1")
    await mesh[0].upload(*range(n))
    await mesh.settle()  # the pushes run (and fail) while n1 is down
    mesh.net.down.clear()
    return mesh


async def test_an_empty_node_copies_the_peers_records_and_index_entries() -> None:
    mesh = await _seeded(40)
    try:
        outcome = await mesh[1].replicator.sync_with(N0)
        assert outcome is not None and outcome.keys_pulled == 40
        assert await mesh[1].root() == await mesh[0].root()
        assert list(mesh[1].raw.iter_index()) == list(mesh[0].raw.iter_index())
        assert mesh[1].raw.counter("keys") == 40
        assert mesh[1].raw.get_extra(snapshot.CURSOR_KEY) is None
        fingerprint = certificate(3).fingerprint
        assert mesh[1].raw.lookup(IndexKind.FINGERPRINT, fingerprint, 5) == [fingerprint]
        # One page of records, one of index entries, one diff step of equal trees.
        assert outcome.meter.requests == 3
        status = await mesh[1].replicator.status()
        assert status["bootstrap"] is None and status["peers"]["n0"]["last"]["keys_pulled"] == 40
        # Now it holds keys: the next round diffs, and is in sync.
        again = await mesh[1].replicator.sync_with(N0)
        assert again is not None and again.in_sync
    finally:
        await mesh.close()


async def test_an_interrupted_copy_resumes_from_the_cursor_in_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "MAX_SNAPSHOT_ROWS", 7)  # 40 keys: 6 pages of records
    mesh = await _seeded(40)
    reads: list[SnapshotRead] = []
    seen: list[dict[str, object] | None] = []
    interrupted = False

    async def hook(message: Any) -> Any:
        nonlocal interrupted
        if isinstance(message, SnapshotRead):
            reads.append(message)
            seen.append(mesh[1].replicator.bootstrap_status())
            if len(reads) == 4 and not interrupted:
                interrupted = True
                return SyncError("stopping for the test")
        return None

    mesh.net.nodes["n0"] = Wrapped(mesh[0].replicator, hook)
    try:
        assert await mesh[1].replicator.sync_with(N0) is None  # the round failed at page 4
        cursor = mesh[1].raw.get_extra(snapshot.CURSOR_KEY)
        assert cursor is not None
        part, after, peer = msgpack.unpackb(cursor)
        assert (part, peer) == (SNAPSHOT_RECORDS, "n0") and after == reads[3].after != b""
        copied = len(list(mesh[1].raw.iter_records()))
        assert 14 <= copied <= 21  # pages 1-3 (page 4 may have been read ahead, not written)
        assert seen[1] is not None and seen[1]["phase"] == "records"  # it said so meanwhile
        reads.clear()
        outcome = await mesh[1].replicator.sync_with(N0)
        assert outcome is not None
        assert reads[0].part == SNAPSHOT_RECORDS and reads[0].after == after  # resumed there
        assert any(r.part == SNAPSHOT_INDEX for r in reads)
        assert await mesh[1].root() == await mesh[0].root()
        assert list(mesh[1].raw.iter_index()) == list(mesh[0].raw.iter_index())
        assert mesh[1].raw.get_extra(snapshot.CURSOR_KEY) is None
    finally:
        await mesh.close()


async def test_a_garbage_sending_peer_gets_its_rows_refused_and_counted() -> None:
    mesh = await _seeded(10)
    good = record(20).encode()
    fields = msgpack.unpackb(record(23).encode())
    cert_21 = msgpack.unpackb(record(21).encode())[2]
    forged = msgpack.packb([1, certificate(22).fingerprint, cert_21, {"n0": 1}, None])
    assert record(23).encode()[:2] == b"\x95\x01"
    uncanonical = b"\x95\xcd\x00\x01" + record(23).encode()[2:]  # format as a uint16
    no_vv = msgpack.packb([1, fields[1], fields[2], {}, None])
    truncated = msgpack.packb([1, fields[1], fields[2][:-5], {"n0": 1}, None])
    garbage_rows = [os.urandom(64), forged, uncanonical, no_vv, truncated, b"\x93\x01\x02\x03"]
    fingerprint = certificate(20).fingerprint
    bad_entries = [b"Z\x00\x01a" + fingerprint, b"w\x00\x00" + fingerprint, b"w\x01\x00ab"]

    async def hook(message: Any) -> Any:
        if isinstance(message, SnapshotRead) and message.part == SNAPSHOT_RECORDS:
            rows = sorted([good, *garbage_rows])
            return SnapshotPage(SNAPSHOT_RECORDS, tuple(rows), b"", 99)
        if isinstance(message, SnapshotRead):
            entry = layout.index_entry(IndexKind.FINGERPRINT, fingerprint, fingerprint)
            return SnapshotPage(SNAPSHOT_INDEX, tuple(sorted([entry, *bad_entries])), b"", 99)
        return None  # the diff and fetches that follow: the honest n0

    mesh.net.nodes["n0"] = Wrapped(mesh[0].replicator, hook)
    try:
        outcome = await mesh[1].replicator.sync_with(N0)
        assert outcome is not None  # the node went on: the diff with the honest part followed
        counters = mesh[1].replicator.counters
        assert counters.records_rejected == len(garbage_rows) + len(bad_entries)
        assert mesh[1].raw.get(fingerprint) == good  # the one sound record was copied
        assert mesh[1].raw.get(certificate(22).fingerprint) is None  # filed under another key
        for entry in mesh[1].raw.iter_index():
            assert layout.split_index_entry(entry) is not None
        # The Merkle diff then brought the honest peer's records through the validated path:
        # n1 holds n0's keys and the copied one, nothing else.
        held = {fp for fp, _ in mesh[1].raw.iter_records()}
        assert held == {certificate(i).fingerprint for i in range(10)} | {fingerprint}
        assert (await mesh[1].replicator.status())["records"] == 11
    finally:
        await mesh.close()


async def test_a_key_committed_here_during_the_copy_is_joined_not_overwritten() -> None:
    mesh = await _seeded(5)
    key = 2
    mine = with_vv(record(key, "n1"), n1=1)

    async def hook(message: Any) -> Any:
        if isinstance(message, SnapshotRead) and message.part == SNAPSHOT_RECORDS:
            await mesh[1].replicator._merge([mine])  # a push that arrives meanwhile
        return None

    mesh.net.nodes["n0"] = Wrapped(mesh[0].replicator, hook)
    try:
        await mesh[1].replicator.sync_with(N0)
        held = await mesh[1].get(key)
        assert held is not None and held.vv.to_obj() == {"n0": 1, "n1": 1}  # the join of both
        assert mesh[1].raw.counter("keys") == 5
    finally:
        await mesh.close()


@pytest.mark.parametrize("budget", [1, 100, 1000, 10**6])
def test_index_pages_keep_to_the_byte_budget_and_lose_no_entry(budget: int) -> None:
    from meshkp.store.memory import MemoryStore
    from tests.unit.store.helpers import fpr, put

    store = MemoryStore()
    store.write([put(fpr(i), new=[(IndexKind.KEYWORD, b"w%d" % (i % 7)), (IndexKind.EMAIL, b"e%d" % i)])
                 for i in range(300)])
    pages, after = [], b""
    while True:
        page = snapshot.read_page(store, SnapshotRead(SNAPSHOT_INDEX, after), budget)
        pages.append(page)
        assert len(page.rows) == 1 or sum(map(len, page.rows)) <= budget
        after = page.next
        if not after:
            break
    assert [row for page in pages for row in page.rows] == list(store.iter_index())


async def test_a_node_that_is_bootstrapping_itself_refuses_to_be_copied() -> None:
    mesh = Mesh(3)
    cursor = msgpack.packb([SNAPSHOT_INDEX, b"", "n2"])  # n1's copy of n2 is unfinished
    try:
        mesh[1].raw.write_bulk(BulkWrite(extra=[(snapshot.CURSOR_KEY, cursor)]))
        # Empty: it answers (nothing to lose; two empty nodes must not wait on each other).
        reply = await mesh[1].replicator.handle("n0", SnapshotRead(SNAPSHOT_RECORDS, b""))
        assert isinstance(reply, SnapshotPage)
        mesh[1].raw.write_bulk(BulkWrite(records=[(certificate(3).fingerprint, record(3).encode())]))
        reply = await mesh[1].replicator.handle("n0", SnapshotRead(SNAPSHOT_RECORDS, b""))
        assert isinstance(reply, SyncError) and "bootstrapping" in reply.reason
        # n0, empty, asking it: no copy, and the round goes on as without one (a scan here),
        # which brings the record through the validated path.
        outcome = await mesh[0].replicator.sync_with(PeerRef("n1", ("127.0.0.1", 0)))
        assert outcome is not None
        assert mesh[0].raw.get(certificate(3).fingerprint) == record(3).encode()
        assert mesh[0].raw.get_extra(snapshot.CURSOR_KEY) is None
    finally:
        await mesh.close()


async def test_a_peer_that_does_not_answer_snapshot_reads_is_scanned_instead() -> None:
    from meshkp.errors import PeerUnreachable

    mesh = await _seeded(12)

    async def hook(message: Any) -> Any:
        if isinstance(message, SnapshotRead):  # an older version drops the unknown type
            raise PeerUnreachable("closed the connection without replying")
        return None

    mesh.net.nodes["n0"] = Wrapped(mesh[0].replicator, hook)
    try:
        outcome = await mesh[1].replicator.sync_with(N0)
        assert outcome is not None and outcome.keys_pulled == 12
        assert await mesh[1].root() == await mesh[0].root()
        assert mesh[1].raw.get_extra(snapshot.CURSOR_KEY) is None
    finally:
        await mesh.close()


async def test_a_copy_logs_its_progress(monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(snapshot, "PROGRESS_LOG_S", 0.0)  # a line per page
    mesh = await _seeded(12)
    try:
        with caplog.at_level("INFO", logger=snapshot.log.name):
            await mesh[1].replicator.sync_with(N0)
        lines = [r.getMessage() for r in caplog.records if "event=bootstrap_progress" in r.getMessage()]
        assert lines, "no bootstrap_progress line"
        assert "peer=n0 phase=records records=12 total=12 percent=100.0" in lines[0]
    finally:
        await mesh.close()


async def test_a_lookup_answered_during_the_copy_is_not_served_stale_after_it() -> None:
    """Regression (corrupt chaos scenario): a lookup that found nothing while the node was
    empty stayed in the term cache, because the copy writes rows around the commit path; the
    copied key was then answered 404 on that node only, with equal Merkle roots."""
    mesh = await _seeded(40)
    try:
        committer = mesh[1].replicator.committer
        service = KeyService(mesh[1].store, "n1", committer, KeyParser(committer, process_threshold=0))
        query = parse_query("0x" + certificate(3).fingerprint.hex(), exact=False, limits=LIMITS)
        assert await service.find(query, 5) == []  # empty yet: the miss is cached
        outcome = await mesh[1].replicator.sync_with(N0)
        assert outcome is not None and outcome.keys_pulled == 40
        assert await service.find(query, 5) == [certificate(3).fingerprint]
    finally:
        await mesh.close()
