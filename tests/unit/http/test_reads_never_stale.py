"""Lookups answered from the reply cache follow every change of the key on this node: a merge
of a version pushed by a peer and a delete pushed by a peer, for op=get, the mr index and the
HTML vindex page (each cached whole after its first answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from meshkp.http.app import make_app
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from tests.unit.replication.helpers import LIMITS, Member, Mesh

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
LOOKUPS = {"get": {"op": "get", "search": "0x" + ALICE},
           "index_mr": {"op": "index", "options": "mr", "search": "0x" + ALICE},
           "vindex": {"op": "vindex", "search": "0x" + ALICE}}


def service_of(member: Member) -> KeyService:
    committer = member.replicator.committer
    return KeyService(member.store, member.node_id, committer,
                      KeyParser(committer, process_threshold=1 << 30))


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    mesh = Mesh(2)
    yield mesh
    await mesh.close()


async def answers(client: TestClient) -> dict[str, tuple[int, bytes]]:
    found = {}
    for name, params in LOOKUPS.items():
        async with client.get("/pks/lookup", params=params) as response:
            found[name] = (response.status, await response.read())
    return found


async def test_a_key_changed_or_deleted_by_a_peer_is_never_served_stale(mesh: Mesh) -> None:
    writer = service_of(mesh[0])
    reader = service_of(mesh[1])
    client = TestClient(TestServer(make_app(reader, LIMITS), host="127.0.0.1"))
    await client.start_server()
    try:
        await writer.add((FIXTURES / "alice_unsigned.asc").read_bytes())
        await mesh.settle()
        first = await answers(client)
        assert all(status == 200 for status, _ in first.values()), first
        assert await answers(client) == first  # now answered from the reply cache

        # A peer merges a new version (a third-party certification) and pushes it here.
        report = await writer.add((FIXTURES / "alice_signed.asc").read_bytes())
        assert [o.status.value for o in report.outcomes] == ["updated"]
        await mesh.settle()
        second = await answers(client)
        assert second["get"][0] == 200 and len(second["get"][1]) > len(first["get"][1])
        assert second["vindex"] != first["vindex"]  # the new signature is listed

        # A peer deletes it: every lookup here is a 404 at once, none from a cached answer.
        await mesh[0].replicator.delete(bytes.fromhex(ALICE), "test", "admin")
        await mesh.settle()
        gone = await answers(client)
        assert {name: status for name, (status, _) in gone.items()} == dict.fromkeys(LOOKUPS, 404)
    finally:
        await client.close()
