"""Group commit without a wasted window: a lone write commits at once, concurrent ones still
share one fsync, and every acknowledged group costs exactly one synced store write.

Real LevelDB; the fsyncs are counted at LevelDBStore.write (each sync=True call is one
fdatasync of its log), never inferred from timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.protocol import RecordWrite
from tests.unit.store.helpers import fpr, put

WRITERS = 8
ROUNDS = 25


class CountingLevelDB(LevelDBStore):
    """A real LevelDBStore that counts its synced writes (one fsync each)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fsyncs = 0

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        super().write(writes, sync=sync)
        self.fsyncs += sync


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[AsyncStore, CountingLevelDB]]:
    base = await asyncio.to_thread(CountingLevelDB, tmp_path / "db")
    store = AsyncStore(base)  # the default config, window included
    yield store, base
    await store.close()


async def test_writes_one_at_a_time_never_wait_for_the_window(
    counted: tuple[AsyncStore, CountingLevelDB],
) -> None:
    store, base = counted
    for n in range(20):
        assert store.writing_alone
        await store.write([put(fpr(n), counters={"keys": 1})])
    assert store.stats.window_waits == 0, store.stats
    assert base.fsyncs == store.stats.groups == 20  # one fsync per acknowledged write
    assert await store.counter("keys") == 20


async def test_concurrent_writers_still_share_fsyncs(
    counted: tuple[AsyncStore, CountingLevelDB],
) -> None:
    store, base = counted

    async def writer(first: int) -> None:
        for n in range(first, first + ROUNDS):
            await store.write([put(fpr(n), counters={"keys": 1})])

    await asyncio.gather(*(writer(w * ROUNDS) for w in range(WRITERS)))
    writes = WRITERS * ROUNDS
    assert await store.counter("keys") == writes
    # One synced write per group, never two; without group commit there would be one per write.
    assert base.fsyncs == store.stats.groups, store.stats
    assert writes / base.fsyncs >= 2, store.stats
    assert store.stats.largest_group > 1
    assert not store.writing_alone  # the last group had company


async def test_run_exclusive_jobs_share_one_fsync_per_group(
    counted: tuple[AsyncStore, CountingLevelDB],
) -> None:
    store, base = counted

    def bump(view: object, n: int) -> int:
        view.write([put(fpr(n), counters={"keys": 1})])  # type: ignore[attr-defined]
        return n

    results = await asyncio.gather(
        *(store.run_exclusive(lambda view, n=n: bump(view, n)) for n in range(WRITERS * 4)))
    assert results == list(range(WRITERS * 4))
    assert base.fsyncs == store.stats.groups < WRITERS * 4, store.stats



async def test_a_group_commit_checks_each_write_once(
    counted: tuple[AsyncStore, CountingLevelDB], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Staging validates a write; the group's store write trusts that (CheckedWrites) instead
    of walking every element again, and a write staging refused never reaches the store."""
    from meshkp.errors import StoreUsageError
    from meshkp.store import batch

    store, base = counted
    checked: list[bytes] = []
    problem = batch._problem

    def counting(write: RecordWrite) -> str | None:
        checked.append(write.fingerprint)
        return problem(write)

    monkeypatch.setattr(batch, "_problem", counting)
    await asyncio.gather(*(store.write([put(fpr(n))]) for n in range(WRITERS)))
    assert sorted(checked) == sorted(fpr(n) for n in range(WRITERS))
    checked.clear()
    with pytest.raises(StoreUsageError):
        await store.write([put(b"short")])
    assert checked == [b"short"]
    assert await store.get(fpr(0)) is not None
    # A plain Store.write still checks what it is given.
    with pytest.raises(StoreUsageError):
        base.write([put(b"short")])
