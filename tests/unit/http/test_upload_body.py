"""POST /pks/add bodies that aiohttp cannot read (red-team findings 4 and 8), through a real
aiohttp test client against the app."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from meshkp.http.app import make_app
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

LIMITS = Limits()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    store = AsyncStore(MemoryStore())
    service = KeyService(store, "n1", Committer(LIMITS), KeyParser(LIMITS, process_threshold=0))
    client = TestClient(TestServer(make_app(service, LIMITS), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await store.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("content_type", [FORM["Content-Type"], "text/plain"])
async def test_a_corrupt_compressed_body_is_400_with_a_reason(
    client: TestClient, encoding: str, content_type: str
) -> None:
    body = b"keytext=" + random.Random(1).randbytes(20_000).hex().encode()  # ~20 KB compressed
    good = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    corrupt = good[:100] + b"\xff" * 40 + good[140:]  # detected while the body is read
    reply = await client.post("/pks/add", data=corrupt, headers={
        "Content-Type": content_type, "Content-Encoding": encoding})
    assert reply.status == 400
    assert "cannot be read" in await reply.text()
    again = await client.post("/pks/add", data=b"keytext=", headers=FORM)  # still serving
    assert again.status == 400 and "keytext" in await again.text()


async def test_a_good_compressed_body_is_still_read(client: TestClient) -> None:
    reply = await client.post("/pks/add", data=gzip.compress(b"keytext=not+a+key"),
                              headers={**FORM, "Content-Encoding": "gzip"})
    assert reply.status == 400 and "cannot be read" not in await reply.text()
