"""TcpControlTransport on loopback: sealed delivery by node id, refusals counted, never blocking."""

from __future__ import annotations

import asyncio

from meshkp.control import AppendResponse, VoteRequest
from meshkp.control.driver.tcp import TcpControlTransport, control_addr
from meshkp.control.raft.messages import Message
from meshkp.net.addr import Addr
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity


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
