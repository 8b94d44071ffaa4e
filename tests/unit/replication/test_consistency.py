"""x-consistency counts the acks of the write's own push: pushed once per peer, and never
satisfied by the ack of a push that left before the write."""

from __future__ import annotations

import asyncio
import dataclasses

from meshkp.replication.consistency import gather_acks
from meshkp.replication.messages import Message, PushAck, PushBatch
from meshkp.replication.peers import ByteMeter, PeerRef, StaticPeers
from meshkp.replication.push import Pusher
from meshkp.replication.status import ReplicationCounters

from .helpers import FAST, Mesh, certificate


async def test_a_quorum_upload_is_pushed_once_to_each_peer() -> None:
    # It used to be pushed twice: by the push queue, and again by the wait for acks.
    mesh = Mesh(3)
    try:
        await mesh[0].upload(11)
        assert await mesh[0].replicator.wait_for([certificate(11).fingerprint], "all") == (3, 3)
        await mesh.settle()
        for peer in mesh.members[1:]:
            assert peer.replicator.counters.records_received == 1
    finally:
        await mesh.close()


async def test_peers_the_origin_fanout_left_out_get_the_write_for_all() -> None:
    mesh = Mesh(4, dataclasses.replace(FAST, origin_fanout=1))
    try:
        await mesh[0].upload(12)
        assert await mesh[0].replicator.wait_for([certificate(12).fingerprint], "all") == (4, 4)
        await mesh.settle()
        # One push from the accepting node to each peer (the one it chose relays on its own).
        assert mesh[0].replicator.counters.pushes_sent == 3
    finally:
        await mesh.close()


class _GatedChannel:
    """Acks pushes, each only once the test opens its gate; counts what each push carried."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []
        self.pushed: list[int] = []

    async def request(self, peer: PeerRef, message: Message, timeout: float,
                      meter: ByteMeter | None = None) -> Message:
        assert isinstance(message, PushBatch)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        self.pushed.append(len(message.records))
        return PushAck(tuple(0 for _ in message.records))

    async def opened(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.gates) < count:
                await asyncio.sleep(0.001)
        self.gates[count - 1].set()


async def test_the_ack_of_a_push_sent_before_the_write_does_not_count() -> None:
    # A push of the key already in flight may carry an older state: only a push read after
    # the wait began (the key queued again) can acknowledge the write.
    peer = PeerRef("p", ("127.0.0.1", 0))
    channel = _GatedChannel()

    async def read_pairs(fps: list[bytes]) -> list[tuple[bytes, bytes]]:
        return [(fp, b"record of " + fp) for fp in fps]

    pusher = Pusher(FAST, StaticPeers([peer]), channel, read_pairs, ReplicationCounters())
    key = bytes(20)
    try:
        pusher.enqueue([key])
        async with asyncio.timeout(5):
            while not channel.gates:  # the first push is in flight
                await asyncio.sleep(0.001)
        waiting = asyncio.create_task(gather_acks(pusher, [peer], [key], 2, timeout=5))
        await channel.opened(1)  # the old push is acknowledged: not enough
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await channel.opened(2)  # the push of the key queued again by the wait
        assert await waiting == 2
        assert channel.pushed == [1, 1]
    finally:
        await pusher.close()
