"""Red-team finding 3 on real loopback sockets: idle connections without a key must not keep
members (replication pushes, push-pulls, joins) out of the TCP listener."""

import asyncio
import time

from meshkp.net.crypto import generate_key
from meshkp.net.tcp import TcpLimits
from meshkp.net.wire import Frame

from .test_transport_loopback import client, tcp_pair


async def hold(addr: tuple[str, int], source: str, count: int) -> list[asyncio.StreamWriter]:
    """Open `count` idle connections from `source` (a loopback address), sending nothing."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(*addr, local_addr=(source, 0))
        writers.append(writer)
    return writers


def close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


async def test_idle_keyless_connections_from_one_host_do_not_block_a_request() -> None:
    key = generate_key()
    server, stats, _ = tcp_pair(key)
    addr = await server.start()
    idle = await hold(addr, "127.0.0.2", 70)  # more than the 64 slots of the red-team run
    try:
        await asyncio.sleep(0.2)  # let the listener accept (or refuse) them all
        cli, _ = client(key)
        started = time.monotonic()
        reply = await cli.request(addr, Frame(1, {"push": 1}), timeout=2)
        took = time.monotonic() - started
        assert reply.body == {"echo": {"push": 1}}
        assert took < 0.5
        # The idle ones admitted, plus the request's own connection if it is still closing.
        assert server.active_connections <= TcpLimits().max_unproven_per_host + 1
        assert stats.dropped[("tcp", "conn_limit")] >= 70 - TcpLimits().max_unproven_per_host
    finally:
        close(idle)
        await server.stop()


async def test_unproven_connections_are_cut_after_the_first_frame_timeout() -> None:
    key = generate_key()
    server, stats, _ = tcp_pair(key, TcpLimits(first_frame_timeout=0.3))
    addr = await server.start()
    idle = await hold(addr, "127.0.0.2", 4)
    try:
        async with asyncio.timeout(3):
            while server.active_connections or stats.dropped[("tcp", "timeout")] < 4:
                await asyncio.sleep(0.05)
    finally:
        close(idle)
        await server.stop()


async def test_a_member_gets_in_while_many_hosts_fill_the_unproven_slots() -> None:
    key = generate_key()
    limits = TcpLimits()
    server, _, _ = tcp_pair(key, limits)
    addr = await server.start()
    cli, _ = client(key)
    assert (await cli.request(addr, Frame(1, {"hello": 1}), timeout=2)).body  # 127.0.0.1 proven
    hosts = [f"127.0.0.{i}" for i in range(2, 12)]
    idle = [w for h in hosts for w in await hold(addr, h, limits.max_unproven_per_host)]
    try:
        await asyncio.sleep(0.2)
        assert server.active_connections == limits.unproven_slots  # the rest were refused
        reply = await cli.request(addr, Frame(1, {"push": 2}), timeout=2)
        assert reply.body == {"echo": {"push": 2}}
    finally:
        close(idle)
        await server.stop()
