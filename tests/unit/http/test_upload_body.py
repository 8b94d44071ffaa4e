"""POST /pks/add bodies that aiohttp cannot read (red-team findings 4 and 8), through a real
aiohttp test client against the app."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
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
KEYTEXT = (Path(__file__).resolve().parents[2] / "fixtures" / "alice_unsigned.asc").read_text()


@asynccontextmanager
async def serving(limits: Limits) -> AsyncIterator[TestClient]:
    store = AsyncStore(MemoryStore())
    committer = Committer(limits)
    service = KeyService(store, "n1", committer, KeyParser(committer, process_threshold=0))
    client = TestClient(TestServer(make_app(service, limits), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await store.close()


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with serving(LIMITS) as client:
        yield client


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


Stalled = tuple[asyncio.StreamReader, asyncio.StreamWriter]  # keep the writer: it owns the socket


async def stall(client: TestClient, length: int, source: str = "127.0.0.1") -> Stalled:
    """Start an upload announcing `length` bytes from `source`, send 1 KiB of it, then stall."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port,
                                                  local_addr=(source, 0))
    head = (f"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n")
    writer.write(head.encode() + b"keytext=" + b"A" * 1016)
    await writer.drain()
    return reader, writer


async def status_line(upload: Stalled, within: float) -> bytes:
    async with asyncio.timeout(within):
        return await upload[0].readline()


async def test_stalled_uploads_are_cut_off_and_others_still_upload() -> None:
    # Red-team finding 4: uploads stopped 1 KiB before their end stayed open, holding memory.
    async with serving(Limits(upload_read_seconds=1)) as client:
        stalled = [await stall(client, 1024 * 1024) for _ in range(6)]
        started = time.monotonic()
        reply = await client.post("/pks/add", data={"keytext": KEYTEXT})
        assert reply.status == 200
        assert time.monotonic() - started < 1.0  # served while the stalled ones wait
        for upload in stalled:
            assert (await status_line(upload, within=3.0)).startswith(b"HTTP/1.1 408")
            upload[1].close()


async def test_buffered_upload_bytes_are_bounded_per_client_and_node() -> None:
    async with serving(LIMITS) as client:
        full = LIMITS.upload_bytes
        per_client = LIMITS.uploads_buffered_client_bytes // full
        held = [await stall(client, full, "127.0.0.2") for _ in range(per_client)]
        over = await stall(client, full, "127.0.0.2")
        assert (await status_line(over, within=3.0)).startswith(b"HTTP/1.1 503")
        # Another client is served at once.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            reply = await other.post(client.make_url("/pks/add"), data={"keytext": KEYTEXT})
            assert reply.status == 200
        for upload in [*held, over]:
            upload[1].close()


async def test_only_a_body_still_arriving_gets_a_read_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A body that came whole with its headers cannot stall: it is read without arming a
    timer on the loop (issue 14). One still arriving is read under the deadline, as before."""
    import types

    from meshkp.http import uploads

    armed: list[float] = []

    def timeout(delay: float) -> asyncio.Timeout:
        armed.append(delay)
        return asyncio.timeout(delay)

    monkeypatch.setattr(uploads, "asyncio", types.SimpleNamespace(timeout=timeout))
    async with serving(Limits(upload_read_seconds=1)) as client:
        reply = await client.post("/pks/add", data={"keytext": KEYTEXT})
        assert reply.status == 200
        assert armed == []
        stalled = await stall(client, 64 * 1024)
        assert (await status_line(stalled, within=3.0)).startswith(b"HTTP/1.1 408")
        stalled[1].close()
        assert armed == [1]
