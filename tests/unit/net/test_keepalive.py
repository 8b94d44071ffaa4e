"""TcpTransport(keep_alive=True): requests to one peer reuse a connection (meshkp/net/keepalive.py)."""

from __future__ import annotations

import asyncio

from meshkp.net.addr import Addr
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.wire import Frame

LOOP = ("127.0.0.1", 0)


def server(key: bytes, limits: TcpLimits | None = None) -> tuple[TcpTransport, list[Addr]]:
    """An echo server that notes the client address (host, port) of every request."""
    peers: list[Addr] = []

    async def echo(addr: Addr, frame: Frame) -> Frame | None:
        peers.append(addr)
        return Frame(1, {"echo": frame.body})

    codec = SealedCodec(Keyring([key]), TcpLimits().frame_bytes, auth=FrameAuth(NodeIdentity.generate()))
    return TcpTransport(LOOP, codec, echo, NetStats(), limits), peers


def keeping_client(key: bytes) -> TcpTransport:
    async def no_requests(addr: Addr, frame: Frame) -> Frame | None:
        return None

    codec = SealedCodec(Keyring([key]), TcpLimits().frame_bytes, auth=FrameAuth(NodeIdentity.generate()))
    return TcpTransport(LOOP, codec, no_requests, NetStats(), keep_alive=True)


async def test_requests_to_one_peer_share_one_connection() -> None:
    key = generate_key()
    srv, peers = server(key)
    addr = await srv.start()
    cli = keeping_client(key)
    try:
        for n in range(5):
            reply = await cli.request(addr, Frame(1, {"n": n}), timeout=5)
            assert reply.body["echo"] == {"n": n}
        assert len(set(peers)) == 1 and len(peers) == 5  # one client port: one connection
        # Two at once: the second opens another; both are kept (per_peer = 2) and reused.
        await asyncio.gather(*(cli.request(addr, Frame(1, {"n": n}), timeout=5) for n in (5, 6)))
        await asyncio.gather(*(cli.request(addr, Frame(1, {"n": n}), timeout=5) for n in (7, 8)))
        assert len(set(peers)) == 2
    finally:
        await cli.stop()
        await srv.stop()


async def test_a_connection_the_peer_closed_is_replaced_without_an_error() -> None:
    key = generate_key()
    srv, peers = server(key, TcpLimits(idle_timeout=0.2))  # it closes idle connections fast
    addr = await srv.start()
    cli = keeping_client(key)
    try:
        await cli.request(addr, Frame(1, {"n": 1}), timeout=5)
        await asyncio.sleep(0.6)  # the server closed the kept connection meanwhile
        reply = await cli.request(addr, Frame(1, {"n": 2}), timeout=5)
        assert reply.body["echo"] == {"n": 2}
        assert len(peers) == 2 and peers[0] != peers[1]  # a new connection, and no error
        await srv.stop()  # and a peer that restarted: the kept connection is dead
        srv2, peers2 = server(key)
        srv2._bind = addr
        await srv2.start()
        try:
            assert (await cli.request(addr, Frame(1, {"n": 3}), timeout=5)).body["echo"] == {"n": 3}
            assert len(peers2) == 1
        finally:
            await srv2.stop()
    finally:
        await cli.stop()
        await srv.stop()


async def test_kept_connections_expire_and_close_when_the_transport_stops() -> None:
    key = generate_key()
    srv, peers = server(key)
    addr = await srv.start()
    cli = keeping_client(key)
    assert cli._kept is not None
    now = [0.0]
    cli._kept.clock = lambda: now[0]
    try:
        await cli.request(addr, Frame(1, {}), timeout=5)
        assert len(cli._kept) == 1
        now[0] = cli._kept.idle_s + 1  # idle too long: not reused, closed
        await cli.request(addr, Frame(1, {}), timeout=5)
        assert len(set(peers)) == 2 and len(cli._kept) == 1
    finally:
        await cli.stop()
        assert len(cli._kept) == 0
        await srv.stop()
