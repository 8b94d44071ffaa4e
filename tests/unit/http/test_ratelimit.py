"""Rate limits: token buckets, bans, trusted proxies and client keys (pure parts by table, the
middleware through a real aiohttp test client against the node's app)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from meshkp.http.buckets import BucketTable, Rate, TokenBucket
from meshkp.http.clientaddr import client_key
from meshkp.http.edge import Edge
from meshkp.http.metrics import HttpMetrics
from meshkp.http.ratelimit import CPU_MS_KEY, RateLimiter, lookup_op, search_cost
from meshkp.limits import Limits
from tests.unit.http.apps import node_app


def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    bucket, rate = TokenBucket(), Rate(2.0, 3.0)
    assert [bucket.take(0.0, 1, rate) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0, 1, rate) == pytest.approx(0.5)  # one token comes in 0.5 s
    assert bucket.take(0.5, 1, rate) == 0.0
    assert bucket.take(100.0, 1, rate) == 0.0  # never more than the burst: 2 left
    assert bucket.take(100.0, 5, rate) == pytest.approx(0.5)  # a cost over it takes all 3
    assert bucket.take(100.5, 5, rate) == 0.0


def test_the_table_is_bounded_and_keeps_banned_clients_longer() -> None:
    table = BucketTable()
    banned = table.get("banned", 0.0, 3)
    banned.banned_until = 100.0
    for name in ("a", "b", "c", "d", "e"):
        table.get(name, 1.0, 3)
    assert len(table) == 3 and table.evicted == 3
    assert table.get("banned", 2.0, 3) is banned  # still remembered, still banned
    assert table.banned_now(2.0) == 1


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
])
def test_an_ipv6_client_is_its_slash_64(address: str, key: str) -> None:
    assert client_key(ipaddress.ip_address(address)) == key


@pytest.mark.parametrize(("search", "cost"), [
    ("alice@example.org", 1), ("0xDEADBEEF", 1), ("Alice Lovelace", 1),
    ("a", 5), ("ab cd", 5), ("ali*", 5), ("%", 5), ("", 5),
])
def test_short_and_wildcard_searches_cost_more(search: str, cost: int) -> None:
    assert search_cost(search, 5) == cost


class Served(TestClient):  # type: ignore[type-arg]
    metrics: HttpMetrics

    def exported(self) -> str:
        return self.metrics.render().decode()


@asynccontextmanager
async def serving(limits: Limits, trusted: tuple[str, ...] = ()) -> AsyncIterator[Served]:
    node = node_app(limits, trusted)
    client = Served(TestServer(node.app, host="127.0.0.1"))
    client.metrics = node.metrics
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await node.store.close()


SMALL = dataclasses.replace(Limits(), rate_get_burst=5, rate_get_per_minute=60,
                            ban_errors=3, ban_errors_seconds=300, ban_seconds=60)
GET = "/pks/lookup?op=get&search=0x0123456789ABCDEF"


async def test_a_client_over_its_rate_gets_429_with_retry_after_then_a_ban() -> None:
    async with serving(SMALL) as client:
        statuses = [(await client.get(GET)).status for _ in range(5)]
        assert statuses == [404] * 5
        over = await client.get(GET)
        assert over.status == 429
        assert int(over.headers["Retry-After"]) == 1
        assert "rate_get_per_minute" in await over.text()
        for _ in range(3):  # ignoring 429s is a client error: the third more bans
            await client.get(GET)
        banned = await client.get("/pks/lookup?op=stats")  # even requests without a bucket
        assert banned.status == 429
        assert "banned" in await banned.text()
        assert 50 <= int(banned.headers["Retry-After"]) <= 60
        metrics = client.exported()
        assert 'meshkp_http_bans_total{reason="errors"} 1.0' in metrics
        assert 'meshkp_http_rate_limited_total{reason="get"} 4.0' in metrics
        assert "meshkp_http_rate_banned 1.0" in metrics


async def test_a_flood_of_any_requests_bans() -> None:
    limits = dataclasses.replace(Limits(), ban_requests=20, ban_requests_seconds=10)
    async with serving(limits) as client:
        statuses = [(await client.get("/pks/health")).status for _ in range(21)]
        assert statuses[:20] == [200] * 20 and statuses[20] == 429
        metrics = client.exported()
        assert 'meshkp_http_bans_total{reason="requests"} 1.0' in metrics


async def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    async with serving(SMALL, trusted=("127.0.0.1/32",)) as client:
        # Through the trusted proxy, each forwarded client has its own buckets.
        for who in ("198.51.100.1", "198.51.100.2"):
            statuses = [(await client.get(GET, headers={"X-Forwarded-For": who})).status
                        for _ in range(6)]
            assert statuses == [404] * 5 + [429], who
        # The proxy's own requests (no header) are exempt.
        assert {(await client.get(GET)).status for _ in range(20)} == {404}
        # A client's own header in front of the proxy's hop changes nothing.
        spoofed = await client.get(GET, headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.1"})
        assert spoofed.status == 429
    async with serving(SMALL) as client:  # loopback not trusted: the header is ignored
        statuses = [(await client.get(GET, headers={"X-Forwarded-For": f"198.51.100.{i}"})).status
                    for i in range(6)]
        assert statuses == [404] * 5 + [429]


async def test_costly_searches_drain_the_search_bucket_faster() -> None:
    limits = dataclasses.replace(Limits(), rate_search_burst=10, rate_search_costly=5)
    async with serving(limits) as client:
        cheap = [(await client.get("/pks/lookup?op=index&search=alice@example.org")).status
                 for _ in range(3)]
        assert 429 not in cheap
        short = [(await client.get("/pks/lookup?op=index&search=a")).status for _ in range(2)]
        assert short == [404, 429]  # 3 + 5 = 8 of 10 tokens; the next 5 do not fit


async def test_an_uploads_verification_cpu_is_charged_to_its_client() -> None:
    limits = dataclasses.replace(Limits(), rate_upload_burst=20, upload_cpu_ms=5000)

    async def costly_add(request: web.Request) -> web.Response:
        request[CPU_MS_KEY] = 5000.0  # the whole budget: 5 more tokens than the upload's own
        return web.Response(text="ok")

    metrics = HttpMetrics()
    app = web.Application()
    Edge(lambda: limits, metrics, limiter=RateLimiter(limits, metrics.registry)).install(app)
    app.router.add_post("/pks/add", costly_add)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        statuses = [(await client.post("/pks/add", data=b"x")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # 4 x 6 tokens drain the burst of 20


@pytest.mark.parametrize(("query", "op"), [
    ("op=get&search=x", "get"), ("search=op%3Dget&op=index", "index"), ("op=%67et", "get"),
    ("op=GET", "get"), ("search=a&op=vindex&op=get", "vindex"), ("search=a", ""),
])
def test_the_op_is_read_as_the_handler_reads_it(query: str, op: str) -> None:
    assert lookup_op(make_mocked_request("GET", f"/pks/lookup?{query}")) == op
