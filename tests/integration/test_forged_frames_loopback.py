"""Issue 12 on real sockets (127.0.0.1): a node holding the cluster key but not another node's
identity cannot declare it dead, make it leave or refute for it, and frames captured from the
wire and replayed 1 s and (with a shortened skew bound) "a minute" later change nothing."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from meshkp.membership.config import MembershipConfig
from meshkp.membership.proofs import Proofs
from meshkp.membership.service import MembershipService
from meshkp.net.addr import Addr, format_addr
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import AUTH_BYTES, FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.replay import ReplayLimits
from meshkp.net.stats import NetStats
from meshkp.net.wire import UDP_DATAGRAM_BYTES, Frame, decode_frame
from meshkp.swim.config import SwimConfig
from meshkp.swim.messages import (
    Ack,
    Alive,
    Dead,
    Leave,
    Message,
    Ping,
    Suspect,
    decode_message,
    unbundle,
)
from meshkp.swim.types import Status
from tests.integration.test_membership_loopback import eventually

pytestmark = pytest.mark.integration

KEY = generate_key()
# "60 s later" in a test that must not wait a minute: a 2 s skew bound, replayed 3 s later.
SHORT = ReplayLimits(max_skew=2.0)


def node(name: str, join: tuple[str, ...] = (), identity: NodeIdentity | None = None
         ) -> MembershipService:
    cfg = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, join=join,
                           swim=SwimConfig.test())
    identity = identity or NodeIdentity.generate(name)
    return MembershipService(cfg, identity, Keyring([KEY]),
                             auth=FrameAuth(identity, replay=SHORT))


def sees(svc: MembershipService, node_id: str, status: Status) -> bool:
    m = svc.swim.member(node_id)
    return m is not None and m.status == status


class Mallory:
    """Holds the cluster key and an identity of her own; sends real datagrams."""

    def __init__(self, node_id: str = "mallory") -> None:
        self.identity = NodeIdentity.generate(node_id)
        self.codec = SealedCodec(Keyring([KEY]), UDP_DATAGRAM_BYTES, auth=FrameAuth(self.identity))
        self.proofs = Proofs(self.identity, FrameAuth(self.identity).peers, NetStats())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, addr: Addr, message: Message) -> None:
        signed = self.proofs.sign(message)
        self.sock.sendto(self.codec.pack(Frame(signed.TYPE, signed.to_map())), addr)

    def raw(self, addr: Addr, data: bytes) -> None:
        self.sock.sendto(data, addr)


class Recorder:
    """Stands in for a node's UDP socket object: records each datagram, then sends it."""

    def __init__(self, inner: Any, log: list[tuple[float, Addr, bytes]]) -> None:
        self._inner, self._log = inner, log

    def sendto(self, data: bytes, addr: Addr) -> None:
        self._log.append((time.monotonic(), addr, data))
        self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
async def started() -> AsyncIterator[list[MembershipService]]:
    nodes: list[MembershipService] = []
    yield nodes
    for n in nodes:
        await n.stop()


async def mesh(started: list[MembershipService], *names: str) -> list[MembershipService]:
    first = node(names[0])
    await first.start()
    started.append(first)
    out = [first]
    for name in names[1:]:
        n = node(name, (format_addr(first.gossip_addr),))
        await n.start()
        started.append(n)
        out.append(n)
    await eventually(lambda: all(sees(a, b.node_id, Status.ALIVE) for a in out for b in out),
                     15, "everyone alive")
    return out


async def test_forged_dead_leave_and_refutation_are_dropped(
        started: list[MembershipService]) -> None:
    a, b, c = await mesh(started, "a", "b", "c")
    inc = b.swim.incarnation
    mallory = Mallory()
    b_key = b.identity.public_key
    forged: list[Message] = [
        Dead("b", inc, "a"), Dead("b", inc, "a", sig=bytes(64)),
        Leave("b", inc + 1, sig=bytes(64)),
        Alive("b", ("127.0.0.1", 9), inc + 1, {}, b_key, bytes(64)),
        Suspect("b", inc, "c", sig=bytes(64)),
    ]
    for target in (a, c):
        for message in forged:
            mallory.send(target.gossip_addr, message)
    # Frames that claim to be b's, signed by another key, carrying b's "own" leave.
    as_b = Mallory("b")
    for target in (a, c):
        as_b.send(target.gossip_addr, Leave("b", inc + 1))
    await eventually(lambda: all(t.stats.dropped[("udp", "statement")] >= len(forged)
                                 and t.stats.dropped[("udp", "identity")] >= 1 for t in (a, c)),
                     5, "every forgery counted")
    await asyncio.sleep(1.0)  # a probe round or two: nothing may have changed
    for t in (a, c):
        assert sees(t, "b", Status.ALIVE) and t.swim.member("b").incarnation == inc  # type: ignore[union-attr]
    assert b.swim.stats.refutations == 0


async def test_captured_leave_frames_replayed_later_change_nothing(
        started: list[MembershipService]) -> None:
    a, b, c = await mesh(started, "a", "b", "c")
    captured: list[tuple[float, Addr, bytes]] = []
    udp = b._transport._udp  # type: ignore[attr-defined]
    udp._transport = Recorder(udp._transport, captured)
    await b.leave(timeout=2.0)
    await eventually(lambda: sees(a, "b", Status.LEFT) and sees(c, "b", Status.LEFT), 5, "b left")
    await b.stop()
    started.remove(b)
    frames = [(t, addr, data) for t, addr, data in captured
              if addr in (a.gossip_addr, c.gossip_addr)]
    assert frames
    # b comes back (same identity, new process): it rejoins above its leave's incarnation.
    b2 = node("b", (format_addr(a.gossip_addr),), identity=b.identity)
    await b2.start()
    started.append(b2)
    await eventually(lambda: sees(a, "b", Status.ALIVE) and sees(c, "b", Status.ALIVE), 10,
                     "b back")

    def dropped() -> int:
        return sum(t.stats.dropped[("udp", r)] for t in (a, c) for r in ("replay", "clock"))

    mallory = Mallory()
    for delay in (1.0, SHORT.max_skew + 1.0):
        wait = frames[0][0] + delay - time.monotonic()
        await asyncio.sleep(max(0.0, wait))
        before = dropped()
        for _, addr, data in frames:
            mallory.raw(addr, data)
        def counted(before: int = before) -> bool:
            return dropped() - before == len(frames)

        await eventually(counted, 5, "replays counted")
    await asyncio.sleep(0.5)
    assert sees(a, "b", Status.ALIVE) and sees(c, "b", Status.ALIVE)


async def test_acks_forged_from_a_dead_nodes_address_do_not_keep_it_alive(
        started: list[MembershipService]) -> None:
    """b stops; Mallory takes its UDP port and acks every probe of b in b's name, from frames
    signed as herself. Before acks were bound to their sender, b stayed alive for as long as
    she answered; now a and c refuse her acks and declare b dead."""
    a, b, c = await mesh(started, "a", "b", "c")
    b_addr = b.gossip_addr
    await b.stop()
    started.remove(b)
    mallory = Mallory()
    for _ in range(50):  # the closed socket is released on a later turn of the loop
        try:
            mallory.sock.bind(b_addr)
            break
        except OSError:
            await asyncio.sleep(0.02)
    mallory.sock.setblocking(False)
    loop = asyncio.get_running_loop()
    answered = 0

    async def answer() -> None:
        nonlocal answered
        while True:
            data, _ = await loop.sock_recvfrom(mallory.sock, UDP_DATAGRAM_BYTES)
            plain = Keyring([KEY]).open(data)[:-AUTH_BYTES]
            frame = decode_frame(plain, len(plain))
            for m in unbundle(decode_message(frame.type, frame.body)):
                if isinstance(m, Ping):
                    mallory.send(m.source_addr, Ack(m.seq, "b"))
                    answered += 1

    task = asyncio.create_task(answer())
    try:
        await eventually(lambda: sees(a, "b", Status.DEAD) and sees(c, "b", Status.DEAD), 20,
                         "b declared dead despite the forged acks")
    finally:
        task.cancel()
    assert answered > 0
    assert a.swim.stats.acks_refused + c.swim.stats.acks_refused > 0
