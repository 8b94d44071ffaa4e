"""The HKP listener's connection caps over real loopback sockets (meshkp/http/connguard.py),
with the request edge deciding each connection's fate (meshkp/http/edge.py): per client, in
all, trusted proxies exempt, keep-alive shed when crowded, requests per connection capped."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from meshkp.http import connguard
from meshkp.http.clientaddr import ClientResolver
from meshkp.http.connguard import ConnectionGuard, GuardedSite
from meshkp.http.edge import Edge
from meshkp.http.metrics import HttpMetrics
from meshkp.limits import Limits
from meshkp.node.edge_checks import admin_address

LIMITS = dataclasses.replace(Limits(), http_connections=8, http_client_connections=3,
                             http_connection_requests=5)
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@asynccontextmanager
async def listening(trusted: tuple[str, ...] = (), banned: bool = False,
                    ) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    resolver = ClientResolver(trusted)
    guard = ConnectionGuard(lambda: LIMITS, resolver,
                            banned=(lambda _key: True) if banned else None)

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    Edge(lambda: LIMITS, HttpMetrics(), resolver, guard).install(app)
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    try:
        yield site.port, guard
    finally:
        await runner.cleanup()


async def ask(port: int) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    return head, reader, writer


async def test_a_client_holds_at_most_its_cap_and_the_refused_get_a_503() -> None:
    async with listening() as (port, guard):
        held = [await ask(port) for _ in range(3)]
        assert all(head.startswith(b"HTTP/1.1 200") for head, _, _ in held)
        refused, reader, _ = await ask(port)
        assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in refused
        assert b"http_client_connections" in await reader.read()
        assert guard.total == 3
        for _, _, writer in held:
            writer.close()
        await asyncio.sleep(0.1)
        assert guard.total == 0 and not guard.per_client


async def test_trusted_proxies_are_exempt_from_the_client_cap_but_not_the_total() -> None:
    async with listening(trusted=("127.0.0.1/32",)) as (port, guard):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]  # idle
        await asyncio.sleep(0.1)
        assert guard.total == 8 and len(held) == 8  # past the client cap of 3
        refused, _, _ = await ask(port)
        assert refused.startswith(b"HTTP/1.1 503")
        assert guard.refused.labels("total")._value.get() == 1


async def test_crowded_answers_close_their_connection() -> None:
    async with listening(trusted=("127.0.0.1/32",)) as (port, _guard):
        calm, _, _ = await ask(port)
        assert b"Connection: close" not in calm  # 1 of 8: kept alive
        crowd = [await ask(port) for _ in range(6)]  # 7 of 8, above 3/4
        assert b"Connection: close" in crowd[-1][0]


async def test_a_keep_alive_connection_is_closed_after_its_request_cap() -> None:
    async with listening() as (port, guard):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        heads = []
        for _ in range(LIMITS.http_connection_requests):
            writer.write(REQUEST)
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await reader.readexactly(len(b"hello"))
        assert [b"Connection: close" in head for head in heads] == [False] * 4 + [True]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the fifth answer
        await asyncio.sleep(0.1)
        assert guard.total == 0 and not guard.connections
        writer.close()


async def test_a_banned_clients_connections_wait_unread_then_get_a_503(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connguard, "TARPIT_S", 0.5)
    async with listening(banned=True) as (port, guard):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.1)
        # Held: at most its cap of 3, and a quarter of the 8 in all: 2. The others at once.
        assert guard.tarpitted["127.0.0.1"] == 2 and guard.total == 0
        late = [await asyncio.wait_for(reader.read(), 5) for reader, _ in held]
        assert sum(b"HTTP/1.1 503" in reply and b"banned" in reply for reply in late) == 4
        await asyncio.sleep(0.1)
        assert not guard.tarpitted


@pytest.mark.parametrize(("spec", "address"), [
    ("11372", ("127.0.0.1", 11372)), ("0.0.0.0:11372", ("0.0.0.0", 11372)),
    ("[::1]:0", ("::1", 0)), (":8080", ("127.0.0.1", 8080)),
])
def test_admin_listen_defaults_to_loopback(spec: str, address: tuple[str, int]) -> None:
    assert admin_address(spec) == address
