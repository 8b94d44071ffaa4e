"""x-consistency on POST /pks/add, in the add handler: which keys it waits for, the 503 of a
shortfall, and a bad level refused before anything is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from meshkp.http.app import make_app
from meshkp.http.consistency import Consistency
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIMITS = Limits()
ALICE = bytes.fromhex("10FE8CF1B483F7525039AA2A361BC1F023E0DCCA")
KEYTEXT = (FIXTURES / "alice_unsigned.asc").read_text()


class FakeAcks:
    """Replication's acks, answering `acked` of `needed` and recording what was waited for."""

    consistency_timeout_s = 1.0

    def __init__(self, acked: int, needed: int) -> None:
        self.acked, self.needed = acked, needed
        self.waited: list[tuple[list[bytes], str]] = []

    async def wait_for(self, fingerprints: Sequence[bytes], level: str) -> tuple[int, int]:
        self.waited.append((list(fingerprints), level))
        return self.acked, self.needed


@pytest.fixture
async def node() -> AsyncIterator[tuple[TestClient, FakeAcks, KeyService]]:
    store = AsyncStore(MemoryStore())
    service = KeyService(store, "n1", Committer(LIMITS), KeyParser(Committer(LIMITS), process_threshold=0))
    acks = FakeAcks(2, 2)
    app = make_app(service, LIMITS, consistency=Consistency(acks, "one"))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, acks, service
    finally:
        await client.close()
        await store.close()


async def test_quorum_waits_for_the_keys_the_upload_changed_then_those_it_held(node) -> None:
    client, acks, _ = node
    for _ in range(2):  # the retry finds the key held here and must wait for it again
        reply = await client.post("/pks/add", data={"keytext": KEYTEXT},
                                  headers={"X-Consistency": "quorum"})
        assert reply.status == 200 and reply.headers["X-Consistency-Acks"] == "2/2"
    assert acks.waited == [([ALICE], "quorum"), ([ALICE], "quorum")]


async def test_a_shortfall_is_503_with_the_upload_result(node) -> None:
    client, acks, _ = node
    acks.acked = 1
    reply = await client.post("/pks/add?options=mr", data={"keytext": KEYTEXT, "x-consistency": "all"})
    assert reply.status == 503 and reply.headers["X-Consistency-Acks"] == "1/2"
    body = json.loads(await reply.text())
    assert (body["acked"], body["needed"]) == (1, 2) and "1 of 2 nodes" in body["error"]
    assert body["result"]["added"] == 1 and body["result"]["keys"][0]["status"] == "added"
    text = await client.post("/pks/add", data={"keytext": KEYTEXT}, headers={"X-Consistency": "all"})
    assert text.status == 503 and "unchanged" in await text.text()


async def test_one_does_not_wait(node) -> None:
    client, acks, _ = node
    reply = await client.post("/pks/add", data={"keytext": KEYTEXT})
    assert reply.status == 200 and "X-Consistency-Acks" not in reply.headers
    assert acks.waited == []


@pytest.mark.parametrize("where", ["header", "query", "form"])
async def test_an_unknown_level_is_400_and_stores_nothing(node, where: str) -> None:
    client, acks, service = node
    data = {"keytext": KEYTEXT}
    headers, path = {}, "/pks/add"
    if where == "header":
        headers = {"X-Consistency": "most"}
    elif where == "query":
        path += "?x-consistency=most"
    else:
        data["x-consistency"] = "most"
    reply = await client.post(path, data=data, headers=headers)
    assert reply.status == 400 and "x-consistency" in await reply.text()
    assert await service.store.counter("keys") == 0 and acks.waited == []
