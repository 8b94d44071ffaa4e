"""/cluster/* routes on a real MembershipService (loopback sockets), in one process:
public reads, bearer-token admin calls, and clear 4xx answers to bad join bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from meshkp.http.cluster import MAX_JOIN_PEERS, ClusterHandlers
from meshkp.http.edge import Edge
from meshkp.http.metrics import HttpMetrics
from meshkp.limits import Limits
from meshkp.membership.config import MembershipConfig
from meshkp.membership.service import MembershipService
from meshkp.net.addr import format_addr
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.identity import NodeIdentity
from meshkp.swim.config import SwimConfig

pytestmark = pytest.mark.integration

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = generate_key()


def service(name: str) -> MembershipService:
    cfg = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, swim=SwimConfig.test())
    return MembershipService(cfg, NodeIdentity.generate(name), Keyring([KEY]))


@pytest.fixture
async def setup() -> AsyncIterator[tuple[TestClient, MembershipService, MembershipService, list]]:
    a, b = service("a"), service("b")
    await a.start()
    await b.start()
    left: list[bool] = []

    async def on_leave() -> None:
        left.append(True)

    app = web.Application()
    limits = Limits()
    Edge(lambda: limits, HttpMetrics()).install(app)  # maps the handlers' errors to their status
    handlers = ClusterHandlers(a, TOKEN, on_leave=on_leave)
    handlers.register(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, a, b, left
    finally:
        await client.close()
        await handlers.close()
        await a.stop()
        await b.stop()


async def test_reads_are_public_and_describe_the_node(setup) -> None:  # type: ignore[no-untyped-def]
    client, a, _, _ = setup
    nodes = await (await client.get("/cluster/nodes")).json()
    assert nodes["self"] == "a" and [n["id"] for n in nodes["nodes"]] == ["a"]
    assert nodes["nodes"][0]["status"] == "alive"
    status = await (await client.get("/cluster/status")).json()
    assert status["id"] == "a" and status["counts"]["alive"] == 1
    assert status["keyring"]["primary"] == Keyring([KEY]).primary_id
    assert (await client.get("/cluster/health")).status == 200


async def test_admin_calls_need_the_token(setup) -> None:  # type: ignore[no-untyped-def]
    client, _, b, left = setup
    body = {"peers": [format_addr(b.gossip_addr)]}
    assert (await client.post("/cluster/join", json=body)).status == 401
    wrong = {"Authorization": "Bearer " + "x" * 32}
    assert (await client.post("/cluster/join", json=body, headers=wrong)).status == 401
    assert (await client.post("/cluster/leave", headers={"Authorization": TOKEN})).status == 401
    assert left == []
    reply = await client.post("/cluster/join", json=body, headers=AUTH)
    assert reply.status == 200 and (await reply.json())["joined"] == 1
    ids = {n["id"] for n in (await (await client.get("/cluster/nodes")).json())["nodes"]}
    assert ids == {"a", "b"}


BAD_JOIN_BODIES = [
    b"not json", b"[]", b'{"peers": []}', b'{"peers": "127.0.0.1:1"}', b'{"peers": [5]}',
    b'{"peers": ["' + b"x" * 301 + b'"]}',
    ('{"peers": [' + ",".join(['"127.0.0.1:1"'] * (MAX_JOIN_PEERS + 1)) + "]}").encode(),
    b'{"peers": ["host:99999"]}', b'{"peers": ["srv:"]}',
    b"[" * 60_000,  # json.loads raises RecursionError, not ValueError, on deep nesting
]


async def test_bad_join_bodies_are_400(setup) -> None:  # type: ignore[no-untyped-def]
    # One test for all bodies (not parametrized): fewer servers, less GC churn on busy CI.
    client, a, _, _ = setup
    for body in BAD_JOIN_BODIES:
        reply = await client.post("/cluster/join", data=body, headers=AUTH)
        assert reply.status == 400, (body[:60], await reply.text())
    assert [m.node_id for m in a.members()] == ["a"]


async def test_unreachable_peer_is_502(setup) -> None:  # type: ignore[no-untyped-def]
    client, _, _, _ = setup
    reply = await client.post("/cluster/join", json={"peers": ["127.0.0.1:1"]}, headers=AUTH)
    assert reply.status == 502 and (await reply.json())["joined"] == 0


async def test_leave_broadcasts_then_calls_back(setup) -> None:  # type: ignore[no-untyped-def]
    client, a, b, left = setup
    await a.join([b.gossip_addr])
    reply = await client.post("/cluster/leave", headers=AUTH)
    assert reply.status == 202
    again = await client.post("/cluster/leave", headers=AUTH)  # idempotent
    assert again.status == 202
    import asyncio
    async with asyncio.timeout(10):
        while not left:
            await asyncio.sleep(0.05)
    assert left == [True]
    statuses = {m.node_id: m.status.label for m in b.members()}
    assert statuses["a"] == "left"


async def test_join_body_arriving_in_pieces_is_read_whole(setup) -> None:  # type: ignore[no-untyped-def]
    # Over a real network a body comes in several segments; reading it with one
    # content.read(n), which returns what has arrived so far, answered 400 to a valid body.
    import asyncio

    client, _, b, _ = setup
    body = json.dumps({"peers": [format_addr(b.gossip_addr)]}).encode()
    head = (f"POST /cluster/join HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + body[:10])
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(body[10:])
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = (await reader.readline()).decode()
    finally:
        writer.close()
    assert status_line.split()[1] == "200", status_line
