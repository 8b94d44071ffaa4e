"""A small upload with nothing to overlap is parsed in its commit job on the writer thread (one
thread hop each way); concurrent or big ones are parsed first, in a thread. Both paths must
decide, store and answer exactly alike, errors included."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from meshkp.errors import InvalidRequest, LimitExceeded, OpenPGPError
from meshkp.keys import parse
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SMALL = ["alice_unsigned.asc", "alice_signed.asc", "gentoo-l2-infra.asc", "ecc_keys.asc",
         "test-key.asc", "test-key-revoke.asc", "steven-12345.asc", "alice_unsigned.asc"]
EMPTY_BLOCK = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.fixture
def parse_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads parse_keytext ran in, in call order."""
    names: list[str] = []
    original = parse.parse_keytext

    def recording(data: bytes, limits: Limits | None = None) -> Any:
        names.append(threading.current_thread().name)
        return original(data, limits)

    monkeypatch.setattr(parse, "parse_keytext", recording)
    return names


async def _service(path: Path, in_commit_bytes: int = parse.IN_COMMIT_BYTES,
                   limits: Limits | None = None) -> tuple[KeyService, AsyncStore]:
    store = AsyncStore(await asyncio.to_thread(LevelDBStore, path))
    committer = Committer(limits or Limits())
    parser = KeyParser(committer, process_threshold=0, in_commit_bytes=in_commit_bytes)
    return KeyService(store, "n1", committer, parser), store


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[KeyService]:
    keys, store = await _service(tmp_path / "db")
    yield keys
    await store.close()


async def test_a_lone_small_upload_is_parsed_on_the_writer_thread(
    service: KeyService, parse_threads: list[str],
) -> None:
    for name in ("alice_unsigned.asc", "alice_signed.asc"):
        report = await service.add((FIXTURES / name).read_bytes())
        assert report.http_status == 200
    assert parse_threads == ["store-writer", "store-writer"]


async def test_concurrent_uploads_are_parsed_in_threads_while_the_writer_commits(
    service: KeyService, parse_threads: list[str],
) -> None:
    # Warm up to one lone upload, then a burst: once one upload is in progress, the others
    # must not wait behind each other's parse on the writer thread.
    await service.add((FIXTURES / "alice_unsigned.asc").read_bytes())
    burst = ["gentoo-l2-infra.asc", "ecc_keys.asc", "test-key.asc", "steven-12345.asc"]
    reports = await asyncio.gather(*(service.add((FIXTURES / n).read_bytes()) for n in burst))
    assert all(r.http_status == 200 for r in reports)
    # The warm-up and the first of the burst (it found nobody else) on the writer; the rest,
    # which found an upload in progress, in threads (they may start parsing in any order).
    assert len(parse_threads) == 1 + len(burst)
    assert parse_threads.count("store-writer") == 2, parse_threads


async def test_an_upload_over_the_size_limit_is_parsed_first(
    service: KeyService, parse_threads: list[str],
) -> None:
    data = (FIXTURES / "gentoo-l1.asc").read_bytes()
    assert len(data) > parse.IN_COMMIT_BYTES
    assert (await service.add(data)).http_status == 200
    assert parse_threads and parse_threads[0] != "store-writer"


async def _upload_all(service: KeyService, names: list[str]) -> list[str]:
    return [(await service.add((FIXTURES / n).read_bytes())).to_text() for n in names]


async def _records(store: AsyncStore) -> list[tuple[bytes, bytes]]:
    return [row async for row in store.iter_records()]


async def test_both_paths_store_and_answer_the_same(tmp_path: Path) -> None:
    in_commit, first = await _service(tmp_path / "a")
    in_thread, second = await _service(tmp_path / "b", in_commit_bytes=0)
    try:
        assert await _upload_all(in_commit, SMALL) == await _upload_all(in_thread, SMALL)
        assert await _records(first) == await _records(second)
        assert await first.counter("keys") == await second.counter("keys") > 0
        assert in_commit.committer.merkle.root_hex(first.store) == \
            in_thread.committer.merkle.root_hex(second.store)
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("bad, error", [
    (EMPTY_BLOCK, InvalidRequest),
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
     OpenPGPError),
])
async def test_a_bad_upload_fails_alike_on_both_paths_and_writes_nothing(
    tmp_path: Path, bad: bytes, error: type[Exception],
) -> None:
    messages = []
    for index, in_commit_bytes in enumerate((parse.IN_COMMIT_BYTES, 0)):
        keys, store = await _service(tmp_path / f"db{index}", in_commit_bytes)
        try:
            with pytest.raises(error) as raised:
                await keys.add(bad)
            messages.append(str(raised.value))
            assert await _records(store) == []
            # The writer is not wedged: the next upload commits.
            assert (await keys.add((FIXTURES / "alice_unsigned.asc").read_bytes())).http_status == 200
        finally:
            await store.close()
    assert messages[0] == messages[1]


async def test_the_parse_in_the_commit_job_obeys_the_commit_limits(tmp_path: Path) -> None:
    keys, store = await _service(tmp_path / "db", limits=Limits(upload_keys=50))
    try:
        with pytest.raises(LimitExceeded, match="upload_keys"):
            await keys.add(b"\xc6\x00" * 51)
        assert await store.counter("keys") == 0
    finally:
        await store.close()


