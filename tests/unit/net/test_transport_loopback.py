"""Real sockets on 127.0.0.1: good frames are delivered; garbage and wrong-key frames are dropped
and counted; nothing a peer sends raises into the handler's caller."""

import asyncio
import socket

import pytest

from meshkp.errors import FrameTooLarge, PeerUnreachable, WireError
from meshkp.net.addr import Addr
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.udp import UdpTransport
from meshkp.net.wire import UDP_DATAGRAM_BYTES, Frame

LOOP = ("127.0.0.1", 0)
KNOWN = frozenset({1, 2})


class Inbox:
    def __init__(self) -> None:
        self.frames: list[tuple[Addr, Frame]] = []
        self.arrived = asyncio.Event()

    def __call__(self, addr: Addr, frame: Frame) -> None:
        if frame.body.get("boom"):
            raise RuntimeError("handler bug")
        self.frames.append((addr, frame))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.frames) < count:
                self.arrived.clear()
                await self.arrived.wait()


def auth_as(node_id: str) -> FrameAuth:
    """A fresh identity named node_id, signing the frames of one test transport."""
    return FrameAuth(NodeIdentity.generate(node_id))


def udp(keyring: Keyring, inbox: Inbox, stats: NetStats, sender: str) -> UdpTransport:
    codec = SealedCodec(keyring, UDP_DATAGRAM_BYTES, KNOWN.__contains__, auth=auth_as(sender))
    return UdpTransport(LOOP, codec, inbox, stats)


async def settle(stats: NetStats, count: int) -> None:
    """Wait (bounded) until `count` drops were recorded; UDP delivery is asynchronous."""
    async with asyncio.timeout(5):
        while stats.dropped_total() < count:
            await asyncio.sleep(0.01)


async def test_udp_delivers_good_frames_and_counts_every_bad_one() -> None:
    key = generate_key()
    a_stats, b_stats = NetStats(), NetStats()
    a_in, b_in = Inbox(), Inbox()
    a = udp(Keyring([key]), a_in, a_stats, "node-a")
    b = udp(Keyring([key]), b_in, b_stats, "node-b")
    a_addr, b_addr = await a.start(), await b.start()
    intruder = udp(Keyring([generate_key()]), Inbox(), NetStats(), "intruder")
    await intruder.start()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert a.send(b_addr, Frame(1, {"seq": 1}))
        await b_in.wait_for(1)
        (src, frame), = b_in.frames
        assert src == a_addr and frame == Frame(1, {"seq": 1}, "node-a")

        intruder.send(b_addr, Frame(1, {"seq": 666}))  # wrong cluster key
        raw.sendto(b"\x00" * 60, b_addr)  # garbage
        raw.sendto(b"\x00" * (UDP_DATAGRAM_BYTES + 1), b_addr)  # oversize
        raw.sendto(Keyring([key]).seal(b"\x02\x01\xc1"), b_addr)  # right key, no signed trailer
        a.send(b_addr, Frame(9, {}))  # type nobody handles
        a.send(b_addr, Frame(2, {"boom": True}))  # handler raises
        await settle(b_stats, 6)
        assert b_stats.dropped == {
            ("udp", "decrypt"): 2, ("udp", "oversize"): 1, ("udp", "decode"): 1,
            ("udp", "unknown_type"): 1, ("udp", "handler_error"): 1,
        }
        # The endpoint still works after all that.
        assert a.send(b_addr, Frame(2, {"seq": 2}))
        await b_in.wait_for(2)
        assert b_in.frames[-1][1].body == {"seq": 2}
        assert b_stats.received_frames["udp"] == 3  # two good + the one whose handler failed
    finally:
        raw.close()
        for t in (a, b, intruder):
            await t.stop()


async def test_udp_send_refuses_oversize_and_hostnames() -> None:
    stats = NetStats()
    t = udp(Keyring([generate_key()]), Inbox(), stats, "n")
    await t.start()
    try:
        assert not t.send(("127.0.0.1", 9), Frame(1, {"x": b"y" * UDP_DATAGRAM_BYTES}))
        assert not t.send(("localhost", 9), Frame(1, {}))
        assert stats.dropped[("udp", "send_oversize")] == 1
        assert stats.dropped[("udp", "send_error")] == 1
    finally:
        await t.stop()
        await t.stop()  # idempotent


def tcp_pair(
    key: bytes, limits: TcpLimits | None = None
) -> tuple[TcpTransport, NetStats, list[Frame]]:
    seen: list[Frame] = []

    async def echo(addr: Addr, frame: Frame) -> Frame | None:
        seen.append(frame)
        if frame.body.get("boom"):
            raise RuntimeError("handler bug")
        if frame.type == 2:
            return None
        return Frame(1, {"echo": frame.body})

    stats = NetStats()
    codec = SealedCodec(Keyring([key]), (limits or TcpLimits()).frame_bytes, KNOWN.__contains__,
                        auth=auth_as("srv"))
    return TcpTransport(LOOP, codec, echo, stats, limits), stats, seen


def client(key: bytes) -> tuple[TcpTransport, NetStats]:
    stats = NetStats()
    codec = SealedCodec(Keyring([key]), TcpLimits().frame_bytes, KNOWN.__contains__,
                        auth=auth_as("cli"))

    async def no_requests(addr: Addr, frame: Frame) -> Frame | None:
        return None

    return TcpTransport(LOOP, codec, no_requests, stats), stats


async def raw_exchange(addr: Addr, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_tcp_request_reply_and_one_way() -> None:
    key = generate_key()
    server, s_stats, seen = tcp_pair(key)
    addr = await server.start()
    cli, c_stats = client(key)
    try:
        reply = await cli.request(addr, Frame(1, {"state": [1, 2, 3]}))
        assert reply == Frame(1, {"echo": {"state": [1, 2, 3]}}, "srv")
        assert seen[0].sender == "cli"
        await cli.send(addr, Frame(2, {"note": "x"}))
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
        big = {"blob": b"\x00" * 1_000_000}  # TCP carries what UDP cannot
        assert (await cli.request(addr, Frame(1, big))).body == {"echo": big}
        assert s_stats.dropped_total() == 0 and c_stats.dropped_total() == 0
    finally:
        await server.stop()


async def test_tcp_bad_frames_are_counted_and_close_the_connection() -> None:
    key = generate_key()
    server, stats, seen = tcp_pair(key, TcpLimits(frame_bytes=4096, io_timeout=0.5))
    addr = await server.start()
    try:
        # Oversize announcement: refused before reading the body.
        assert await raw_exchange(addr, (1 << 30).to_bytes(4, "big")) == b""
        # Garbage body.
        assert await raw_exchange(addr, (50).to_bytes(4, "big") + b"\xff" * 50) == b""
        # Wrong cluster key.
        foreign = Keyring([generate_key()]).seal(b"\x01\x01\x80")
        assert await raw_exchange(addr, len(foreign).to_bytes(4, "big") + foreign) == b""
        # Truncated frame then silence: cut off by io_timeout.
        assert await raw_exchange(addr, (100).to_bytes(4, "big") + b"abc") == b""
        # Handler raising.
        boom = SealedCodec(Keyring([key]), 4096, auth=auth_as("boomer")).pack(Frame(1, {"boom": True}))
        assert await raw_exchange(addr, len(boom).to_bytes(4, "big") + boom) == b""
        await settle(stats, 5)
        assert stats.dropped == {
            ("tcp", "oversize"): 1, ("tcp", "decrypt"): 2, ("tcp", "timeout"): 1,
            ("tcp", "handler_error"): 1,
        }
        # Still serving good clients.
        cli, _ = client(key)
        assert (await cli.request(addr, Frame(1, {"ok": 1}))).body == {"echo": {"ok": 1}}
    finally:
        await server.stop()


async def test_tcp_wrong_key_client_gets_nothing_and_is_counted() -> None:
    server, stats, seen = tcp_pair(generate_key())
    addr = await server.start()
    intruder, i_stats = client(generate_key())
    try:
        with pytest.raises(PeerUnreachable):
            await intruder.request(addr, Frame(1, {"join": 1}), timeout=2)
        assert stats.dropped[("tcp", "decrypt")] == 1 and seen == []
    finally:
        await server.stop()


async def test_tcp_connection_limit_and_client_errors() -> None:
    key = generate_key()
    server, stats, _ = tcp_pair(key, TcpLimits(max_connections=1, idle_timeout=5))
    addr = await server.start()
    cli, c_stats = client(key)
    holder = await asyncio.open_connection(*addr)  # occupies the only slot
    try:
        async with asyncio.timeout(5):
            while server.active_connections < 1:
                await asyncio.sleep(0.01)
        with pytest.raises(PeerUnreachable):
            await cli.request(addr, Frame(1, {}), timeout=2)
        assert stats.dropped[("tcp", "conn_limit")] == 1
    finally:
        holder[1].close()
        await server.stop()
    with pytest.raises(PeerUnreachable):  # nobody listening any more
        await cli.request(addr, Frame(1, {}), timeout=2)
    with pytest.raises(FrameTooLarge):
        await cli.request(addr, Frame(1, {"x": b"0" * (TcpLimits().frame_bytes + 1)}))


async def test_tcp_reply_that_does_not_open_is_wire_error_and_counted() -> None:
    # Mid-rotation mistake: the server already seals with a key the client has not installed.
    k_cli, k_srv = generate_key(), generate_key()
    server, s_stats, seen = tcp_pair(k_srv)
    server._codec.keyring.replace([k_srv, k_cli])  # opens the client's frames, seals with k_srv
    addr = await server.start()
    cli, c_stats = client(k_cli)
    try:
        with pytest.raises(WireError) as info:
            await cli.request(addr, Frame(1, {"push": 1}))
        assert info.value.reason == "decrypt"
        assert len(seen) == 1 and s_stats.dropped_total() == 0
        assert c_stats.dropped == {("tcp", "decrypt"): 1}
    finally:
        await server.stop()


async def test_tcp_stop_with_open_connections_is_clean() -> None:
    # On Python 3.11, asyncio's stream callback calls task.exception() on the handler task; a
    # handler that ends cancelled made every stop() with a peer connected log an ERROR traceback
    # ("Exception in callback ... CancelledError").
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        server, _, _ = tcp_pair(generate_key())
        addr = await server.start()
        holders = [await asyncio.open_connection(*addr) for _ in range(3)]
        async with asyncio.timeout(5):
            while server.active_connections < 3:
                await asyncio.sleep(0.01)
        await server.stop()
        assert server.active_connections == 0
        for _ in range(5):
            await asyncio.sleep(0)
        for _, writer in holders:
            writer.close()
        assert errors == []
    finally:
        loop.set_exception_handler(None)
