"""TcpControlTransport on loopback: sealed delivery by node id, refusals counted, never blocking."""

from __future__ import annotations

import asyncio

from meshkp.control import AppendResponse, VoteRequest
from meshkp.control.driver.link import MAX_QUEUE
from meshkp.control.driver.tcp import TcpControlTransport, control_addr
from meshkp.control.raft.messages import Message
from meshkp.net.addr import Addr
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.tcp import TcpLimits


def test_messages_reach_the_peer_named_by_id_with_the_sender_id() -> None:
    async def scenario() -> None:
        keyring = Keyring([generate_key()])
        addrs: dict[str, Addr] = {}
        got: list[tuple[str, Message]] = []
        a = TcpControlTransport(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("a")),
                                addrs.get)
        b = TcpControlTransport(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("b")),
                                addrs.get)
        b.receive = lambda sender, m: got.append((sender, m))
        addrs["a"], addrs["b"] = await a.start(), await b.start()
        try:
            a.send("b", VoteRequest(3, 10, 2, pre=True))
            a.send("b", AppendResponse(3, True, 10, 1.5))
            a.send("nobody", VoteRequest(3, 10, 2, pre=False))  # unknown: dropped at once
            for _ in range(200):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sorted(type(m).__name__ for _, m in got) == ["AppendResponse", "VoteRequest"]
            assert {s for s, _ in got} == {"a"}
            assert a.dropped == 1
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_a_peer_with_another_key_gets_nothing_through() -> None:
    async def scenario() -> None:
        addrs: dict[str, Addr] = {}
        got: list[Message] = []
        a = TcpControlTransport(("127.0.0.1", 0), Keyring([generate_key()]),
                                FrameAuth(NodeIdentity.generate("a")), addrs.get)
        b = TcpControlTransport(("127.0.0.1", 0), Keyring([generate_key()]),
                                FrameAuth(NodeIdentity.generate("b")), addrs.get)
        b.receive = lambda _s, m: got.append(m)
        addrs["b"] = await b.start()
        await a.start()
        try:
            a.send("b", VoteRequest(1, 0, 0, pre=True))
            for _ in range(100):
                if b.stats.dropped_total():
                    break
                await asyncio.sleep(0.01)
            assert got == [] and b.stats.dropped_total() == 1
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_control_addr_reads_the_member_meta() -> None:
    assert control_addr({"control": "127.0.0.1:7000"}) == ("127.0.0.1", 7000)
    assert control_addr({"control": "junk"}) is None and control_addr({}) is None


def auth(node_id: str) -> FrameAuth:
    return FrameAuth(NodeIdentity.generate(node_id))


async def _until(predicate: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_messages_to_a_peer_share_one_connection_in_order() -> None:
    async def scenario() -> None:
        keyring = Keyring([generate_key()])
        addrs: dict[str, Addr] = {}
        got: list[int] = []
        a = TcpControlTransport(("127.0.0.1", 0), keyring, auth("a"), addrs.get)
        b = TcpControlTransport(("127.0.0.1", 0), keyring, auth("b"), addrs.get)
        b.receive = lambda _s, m: got.append(m.term)  # type: ignore[attr-defined]
        addrs["a"], addrs["b"] = await a.start(), await b.start()
        try:
            for term in range(300):
                a.send("b", VoteRequest(term, 10, 2, pre=True))
                if term % 50 == 0:
                    await asyncio.sleep(0.01)
            await _until(lambda: len(got) == 300)
            assert got == list(range(300))
            assert a.connects == 1 and a.dropped == 0 and a.sent == 300
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_a_link_reconnects_to_a_restarted_peer_and_rotates_before_the_frame_bound() -> None:
    async def scenario() -> None:
        keyring = Keyring([generate_key()])
        addrs: dict[str, Addr] = {}
        got: list[int] = []
        limits = TcpLimits(frames_per_connection=10)
        a = TcpControlTransport(("127.0.0.1", 0), keyring, auth("a"), addrs.get, limits=limits)
        b = TcpControlTransport(("127.0.0.1", 0), keyring, auth("b"), addrs.get, limits=limits)
        b.receive = lambda _s, m: got.append(m.term)  # type: ignore[attr-defined]
        addrs["b"] = await b.start()
        for term in range(25):
            a.send("b", VoteRequest(term, 0, 0, pre=True))
            await asyncio.sleep(0.002)
        await _until(lambda: len(got) == 25)
        assert a.dropped == 0 and a.connects == 3  # 9 frames a connection, under the bound of 10
        await b.stop()  # the peer goes away and comes back on another port
        b2 = TcpControlTransport(("127.0.0.1", 0), keyring, auth("b"), addrs.get, limits=limits)
        b2.receive = lambda _s, m: got.append(m.term)  # type: ignore[attr-defined]
        addrs["b"] = await b2.start()
        try:
            for term in range(100, 105):
                a.send("b", VoteRequest(term, 0, 0, pre=True))
                await asyncio.sleep(0.01)
            await _until(lambda: got[-1:] == [104])
            assert a.connects >= 4
        finally:
            await a.stop()
            await b2.stop()

    asyncio.run(scenario())


def test_a_peer_that_is_gone_costs_a_bounded_queue_and_counted_drops() -> None:
    async def scenario() -> None:
        keyring = Keyring([generate_key()])
        gone = TcpControlTransport(("127.0.0.1", 0), keyring, auth("b"), lambda _n: None)
        addr = await gone.start()
        await gone.stop()  # nothing listens there any more
        a = TcpControlTransport(("127.0.0.1", 0), keyring, auth("a"), {"b": addr}.get)
        await a.start()
        try:
            for term in range(MAX_QUEUE + 40):
                a.send("b", VoteRequest(term, 0, 0, pre=True))
            assert a.stats.dropped[("tcp", "queue_full")] == 40  # the oldest, at once
            await _until(lambda: a.connects == 0 and a.dropped >= 40)
            assert a.sent == 0
        finally:
            await a.stop()

    asyncio.run(scenario())


def test_a_link_closes_only_after_an_idle_stretch_and_reopens_on_the_next_message() -> None:
    async def scenario() -> None:
        keyring = Keyring([generate_key()])
        addrs: dict[str, Addr] = {}
        got: list[int] = []
        limits = TcpLimits(idle_timeout=0.3)  # the link closes after 0.2 s without a write
        a = TcpControlTransport(("127.0.0.1", 0), keyring, auth("a"), addrs.get, limits=limits)
        b = TcpControlTransport(("127.0.0.1", 0), keyring, auth("b"), addrs.get, limits=limits)
        b.receive = lambda _s, m: got.append(m.term)  # type: ignore[attr-defined]
        addrs["b"] = await b.start()
        try:
            for term in range(6):  # a write every 0.1 s keeps it open well past 0.2 s
                a.send("b", VoteRequest(term, 0, 0, pre=True))
                await asyncio.sleep(0.1)
            await _until(lambda: len(got) == 6)
            assert a.connects == 1
            link = a._links["b"]
            await _until(lambda: link._writer is None)  # idle: closed by the link itself
            a.send("b", VoteRequest(9, 0, 0, pre=True))
            await _until(lambda: got[-1:] == [9])
            assert a.connects == 2 and a.dropped == 0
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
