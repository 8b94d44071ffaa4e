"""A push takes the record from the commit that queued it, and is never older than the store."""

from __future__ import annotations

import asyncio

from meshkp.keys.commit import PULLED, UPLOADED, Commit, Source
from meshkp.replication.messages import Message, PushAck, PushBatch
from meshkp.replication.peers import ByteMeter, PeerRef, StaticPeers
from meshkp.replication.push import Pusher
from meshkp.replication.recent import RecentRecords
from meshkp.replication.status import ReplicationCounters
from meshkp.store.protocol import RecordWrite

from .helpers import FAST

KEY = bytes(range(20))
OTHER = bytes(range(1, 21))


def commit(source: Source, *writes: tuple[bytes, bytes | None]) -> Commit:
    return Commit(source, {fp: None for fp, _ in writes},  # type: ignore[misc]
                  tuple(RecordWrite(fp, record) for fp, record in writes))


class _Recorder:
    """Acks every push at once and keeps the records each one carried."""

    def __init__(self) -> None:
        self.records: list[bytes] = []

    async def request(self, peer: PeerRef, message: Message, timeout: float,
                      meter: ByteMeter | None = None) -> Message:
        assert isinstance(message, PushBatch)
        self.records.extend(message.records)
        return PushAck(tuple(0 for _ in message.records))


def test_a_pushed_commit_is_remembered_and_any_other_commit_forgets_its_keys() -> None:
    recent = RecentRecords()
    recent.observe(commit(UPLOADED, (KEY, b"v1"), (OTHER, b"o1")), pushed=True)
    assert recent.split([KEY, OTHER]) == ({KEY: b"v1", OTHER: b"o1"}, [])
    # An anti-entropy pull is not pushed: its newer state is only in the store now.
    recent.observe(commit(PULLED, (KEY, b"v2")), pushed=False)
    assert recent.split([KEY, OTHER]) == ({OTHER: b"o1"}, [KEY])
    recent.observe(commit(UPLOADED, (OTHER, None)), pushed=True)  # the record was removed
    assert recent.split([OTHER]) == ({}, [OTHER])


def test_a_bulk_copy_forgets_everything() -> None:
    recent = RecentRecords()
    recent.observe(commit(UPLOADED, (KEY, b"v1")), pushed=True)
    recent.observe(Commit(PULLED, {}, (), bulk=True), pushed=False)
    assert len(recent) == 0 and recent.bytes == 0
    assert recent.split([KEY]) == ({}, [KEY])


def test_the_oldest_records_go_first_past_either_bound() -> None:
    recent = RecentRecords(max_entries=2, max_bytes=10)
    for i in range(3):
        recent.observe(commit(UPLOADED, (bytes([i]) * 20, b"abc")), pushed=True)
    assert recent.split([bytes([0]) * 20])[1] == [bytes([0]) * 20]
    assert len(recent) == 2
    recent.observe(commit(UPLOADED, (KEY, b"x" * 9)), pushed=True)  # 9 + 3 bytes > 10
    assert len(recent) == 1 and recent.bytes == 9


async def test_the_sender_pushes_the_commits_bytes_without_reading_the_store() -> None:
    reads: list[list[bytes]] = []

    async def read_pairs(fps: list[bytes]) -> list[tuple[bytes, bytes]]:
        reads.append(list(fps))
        return [(fp, b"stored " + fp) for fp in fps]

    peers = [PeerRef(f"p{i}", ("127.0.0.1", i)) for i in range(3)]
    channel = _Recorder()
    pusher = Pusher(FAST, StaticPeers(peers), channel, read_pairs, ReplicationCounters())
    try:
        pusher.on_commit(commit(UPLOADED, (KEY, b"committed")))
        async with asyncio.timeout(5):
            while pusher.pending() or len(channel.records) < 3:
                await asyncio.sleep(0.001)
        assert channel.records == [b"committed"] * 3
        assert reads == []
        # A key queued without a commit here (x-consistency of a key already held) is read.
        pusher.push_to(peers[:1], [OTHER])
        async with asyncio.timeout(5):
            while len(channel.records) < 4:
                await asyncio.sleep(0.001)
        assert reads == [[OTHER]] and channel.records[-1] == b"stored " + OTHER
    finally:
        await pusher.close()


async def test_a_key_pulled_after_its_upload_is_pushed_in_its_stored_state() -> None:
    # The pull joined more into the key: pushing the upload's bytes would hand a peer an older
    # state than this node acknowledges (an x-consistency wait counts that push).
    async def read_pairs(fps: list[bytes]) -> list[tuple[bytes, bytes]]:
        return [(fp, b"joined") for fp in fps]

    peer = PeerRef("p", ("127.0.0.1", 1))
    channel = _Recorder()
    pusher = Pusher(FAST, StaticPeers([peer]), channel, read_pairs, ReplicationCounters())
    try:
        pusher.recent.observe(commit(UPLOADED, (KEY, b"uploaded")), pushed=True)
        pusher.on_commit(commit(PULLED, (KEY, b"joined")))
        pusher.push_to([peer], [KEY])
        async with asyncio.timeout(5):
            while not channel.records:
                await asyncio.sleep(0.001)
        assert channel.records == [b"joined"]
    finally:
        await pusher.close()
