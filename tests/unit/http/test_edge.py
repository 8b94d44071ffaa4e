"""The request edge (meshkp/http/edge.py) behind the node's real listener (GuardedSite, loopback
sockets): the client resolved per connection or, from a trusted proxy, per request; limits
replaced by the policy at run time; refusals counted under their route."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from meshkp.http.app import GUARD_KEY
from meshkp.http.connguard import GuardedSite
from meshkp.http.metrics import HttpMetrics
from meshkp.keys.commit import Committer
from meshkp.limits import Limits
from tests.unit.http.apps import node_app

SMALL = dataclasses.replace(Limits(), rate_get_burst=3, rate_get_per_minute=60)
GET = "/pks/lookup?op=get&search=0x0123456789ABCDEF"


@dataclasses.dataclass
class Listener:
    url: str
    committer: Committer
    metrics: HttpMetrics
    app: web.Application


@asynccontextmanager
async def listening(limits: Limits, trusted: tuple[str, ...] = ()) -> AsyncIterator[Listener]:
    node = node_app(limits, trusted)
    runner = web.AppRunner(node.app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, node.app[GUARD_KEY])
    await site.start()
    try:
        yield Listener(f"http://127.0.0.1:{site.port}", node.committer, node.metrics, node.app)
    finally:
        await runner.cleanup()
        await node.store.close()


async def statuses(session: aiohttp.ClientSession, url: str, count: int,
                   forwarded: str | None = None) -> list[int]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    found = []
    for _ in range(count):
        async with session.get(url, headers=headers) as reply:
            found.append(reply.status)
    return found


def one_connection() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))


async def test_a_trusted_proxys_connection_carries_each_forwarded_clients_own_limits() -> None:
    async with listening(SMALL, trusted=("127.0.0.1/32",)) as node, one_connection() as session:
        url = node.url + GET
        assert await statuses(session, url, 4, "198.51.100.1") == [404] * 3 + [429]
        assert await statuses(session, url, 4, "198.51.100.2") == [404] * 3 + [429]
        assert await statuses(session, url, 6) == [404] * 6  # the proxy itself: exempt
        (connection,) = node.app[GUARD_KEY].connections.values()
        assert connection.client is None and connection.requests == 14


async def test_an_untrusted_connection_is_one_client_whatever_it_forwards() -> None:
    async with listening(SMALL) as node, one_connection() as session:
        url = node.url + GET
        found = [*await statuses(session, url, 2, "198.51.100.1"),
                 *await statuses(session, url, 2, "198.51.100.2")]
        assert found == [404, 404, 404, 429]
        (connection,) = node.app[GUARD_KEY].connections.values()
        assert connection.client is not None and connection.client.key == "127.0.0.1"


async def test_limits_replaced_by_the_policy_apply_to_the_next_request() -> None:
    async with listening(Limits()) as node, one_connection() as session:
        url = node.url + GET
        assert await statuses(session, url, 5) == [404] * 5
        node.committer.limits = SMALL  # what an applied PUT /cluster/policy does
        # The get bucket was left at 195 of 200 tokens: capped at the new burst of 3.
        assert await statuses(session, url, 4) == [404] * 3 + [429]


async def test_a_refusal_is_counted_under_its_route_and_op() -> None:
    async with listening(SMALL) as node, one_connection() as session:
        await statuses(session, node.url + GET, 4)
        assert node.metrics.requests.counts[("/pks/lookup", "get", 429)] == 1
        assert node.metrics.requests.counts[("/pks/lookup", "get", 404)] == 3
