"""AsyncStore: reads off the loop, one ordered writer, group commit with per-caller outcomes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from meshkp.errors import ConfigError, StoreClosed, StoreError, StoreUsageError
from meshkp.store.executor import AsyncStore, ExecutorConfig
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind, RecordWrite, Store
from tests.unit.store.helpers import fpr, put

W = IndexKind.KEYWORD
# A window long enough that writes submitted together on a busy 2-core machine share a group.
GROUPING = ExecutorConfig(commit_window_s=0.02)


async def _open(path: Path) -> LevelDBStore:
    """Open a LevelDBStore off the loop: opening creates files and fsyncs the schema key."""
    return await asyncio.to_thread(LevelDBStore, path)


@pytest.fixture(params=["memory", "leveldb"])
async def astore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    base: Store = MemoryStore() if request.param == "memory" else await _open(tmp_path / "db")
    wrapped = AsyncStore(base, GROUPING)
    yield wrapped
    await wrapped.close()


async def test_reads_and_writes_round_trip(astore: AsyncStore) -> None:
    await astore.write([put(fpr(1), b"v", new=[(W, b"t")], counters={"keys": 1},
                            extra=[(b"m/1", b"h")])])
    assert await astore.get(fpr(1)) == b"v"
    assert await astore.lookup(W, b"t", 5) == [fpr(1)]
    assert await astore.counter("keys") == 1
    assert await astore.get_extra(b"m/1") == b"h"
    assert await astore.read(lambda s: (s.get(fpr(1)), s.counter("keys"))) == (b"v", 1)


async def test_concurrent_writes_share_commits_and_all_land(astore: AsyncStore) -> None:
    await asyncio.gather(*(astore.write([put(fpr(n), counters={"keys": 1})]) for n in range(200)))
    assert await astore.counter("keys") == 200
    assert astore.stats.writes_committed == 200
    assert astore.stats.commits < 50, astore.stats


async def test_a_bad_write_fails_alone_and_its_group_commits(astore: AsyncStore) -> None:
    writes = [[put(fpr(n), counters={"keys": 1})] for n in range(20)]
    writes[7] = [put(b"hex" * 10)]
    results = await asyncio.gather(*(astore.write(w) for w in writes), return_exceptions=True)
    assert isinstance(results[7], StoreUsageError)
    assert [r for i, r in enumerate(results) if i != 7] == [None] * 19
    assert await astore.counter("keys") == 19
    assert astore.stats.commits < 19


async def test_writes_apply_in_submission_order(astore: AsyncStore) -> None:
    await asyncio.gather(*(astore.write([put(fpr(1), str(n).encode())]) for n in range(50)))
    assert await astore.get(fpr(1)) == b"49"


async def test_read_modify_write_loses_no_update_inside_groups(astore: AsyncStore) -> None:
    def increment(store: Store) -> int:
        value = int(store.get(fpr(1)) or b"0") + 1
        assert store.counter("updates") == value - 1  # staged deltas count too
        bucket = store.get_extra(b"merkle/bucket") or b""
        store.write([put(fpr(1), str(value).encode(), extra=[(b"merkle/bucket", bucket + b".")],
                         counters={"updates": 1})])
        return value

    results = await asyncio.gather(*(astore.run_exclusive(increment) for _ in range(100)))
    assert sorted(results) == list(range(1, 101))
    assert await astore.get(fpr(1)) == b"100"
    assert await astore.get_extra(b"merkle/bucket") == b"." * 100
    assert await astore.counter("updates") == 100
    assert astore.stats.commits < 50, "run_exclusive functions were not group-committed"


async def test_a_range_read_sees_what_earlier_jobs_of_its_group_staged(astore: AsyncStore) -> None:
    async def writer() -> None:
        await astore.write([put(fpr(1), new=[(W, b"fresh")], counters={"keys": 1})])

    def reader(store: Store) -> tuple[list[bytes], int, list[bytes]]:
        return store.lookup(W, b"fresh", 5), store.counter("keys"), [k for k, _ in store.iter_records()]

    _, seen = await asyncio.gather(writer(), astore.run_exclusive(reader))
    assert seen == ([fpr(1)], 1, [fpr(1)])


async def test_an_exclusive_function_error_reaches_only_its_caller(astore: AsyncStore) -> None:
    def boom(store: Store) -> None:
        raise ValueError("merge failed")

    results = await asyncio.gather(
        astore.write([put(fpr(1))]), astore.run_exclusive(boom), astore.write([put(fpr(2))]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert await astore.get(fpr(2)) == b"record"


async def test_read_functions_cannot_write(astore: AsyncStore) -> None:
    with pytest.raises(StoreUsageError, match="run_exclusive"):
        await astore.read(lambda s: s.write([put(fpr(1))]))


async def test_async_iteration_pages_through_one_snapshot(tmp_path: Path) -> None:
    astore = AsyncStore(await _open(tmp_path / "db"), ExecutorConfig(scan_page_rows=7))
    keys = sorted(fpr(n) for n in range(50))
    await astore.write([put(k, b"old", extra=[(b"m/" + k, b"e")]) for k in keys])
    seen: list[tuple[bytes, bytes]] = []
    async for key, value in astore.iter_records():
        if not seen:
            await astore.write([put(k, b"new") for k in keys])
        seen.append((key, value))
    assert seen == [(k, b"old") for k in keys]
    assert [k async for k, _ in astore.iter_extra(b"m/")] == [b"m/" + k for k in keys]
    async for _ in astore.iter_records():
        break  # leaving early releases the snapshot
    await astore.close()


class _FailingStore(MemoryStore):
    """A MemoryStore whose next write fails like a full disk (unit-tier fake)."""

    fail = False

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        if self.fail:
            raise StoreError("LevelDB write failed: IO error: No space left on device")
        super().write(writes, sync)


async def test_a_failed_commit_fails_every_job_in_the_group_and_stores_nothing() -> None:
    base = _FailingStore()
    astore = AsyncStore(base, GROUPING)
    base.fail = True
    results = await asyncio.gather(*(astore.write([put(fpr(n))]) for n in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    base.fail = False
    assert await astore.get(fpr(1)) is None
    await astore.write([put(fpr(1))])  # the writer thread survived
    assert await astore.get(fpr(1)) == b"record"
    await astore.close()


async def test_close_finishes_queued_writes_then_refuses(tmp_path: Path) -> None:
    base = await _open(tmp_path / "db")
    astore = AsyncStore(base, GROUPING)
    pending = [asyncio.create_task(astore.write([put(fpr(n))])) for n in range(20)]
    await asyncio.sleep(0)  # the tasks queue their jobs
    await astore.close()
    await astore.close()
    assert all(task.done() and task.exception() is None for task in pending)
    with pytest.raises(StoreClosed):
        await astore.write([put(fpr(99))])
    with pytest.raises(StoreClosed):
        await astore.get(fpr(1))
    reopened = await _open(tmp_path / "db")
    assert len(await asyncio.to_thread(lambda: list(reopened.iter_records()))) == 20
    await asyncio.to_thread(reopened.close)


async def test_pending_jobs_are_bounded_and_drain() -> None:
    small = AsyncStore(MemoryStore(), ExecutorConfig(max_pending_jobs=2))
    release = threading.Event()
    blocker = asyncio.create_task(small.run_exclusive(lambda s: release.wait(5) and None))
    writers = [asyncio.create_task(small.write([put(fpr(n))])) for n in range(10)]
    await asyncio.sleep(0.05)
    # A job that got room always runs, even if its caller gives up: cancel every caller while
    # the writer is held, and what is stored afterwards is what was let in. (The queue's length
    # tells nothing: the writer takes queued jobs into its group at once.)
    for task in writers:
        task.cancel()
    await asyncio.gather(*writers, return_exceptions=True)
    release.set()
    await blocker
    assert len(list(small.store.iter_records())) == 1, "more jobs let in than max_pending_jobs"
    # The bound only delays callers: many more writes than it all complete.
    await asyncio.gather(*(small.write([put(fpr(n))]) for n in range(10, 30)))
    assert len(list(small.store.iter_records())) == 21
    await small.close()


async def test_a_cancelled_caller_does_not_wedge_the_writer(astore: AsyncStore) -> None:
    task = asyncio.create_task(astore.write([put(fpr(1))]))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await astore.write([put(fpr(2))])
    assert await astore.get(fpr(2)) == b"record"


async def test_heavy_synced_writes_and_reads_never_block_the_loop(tmp_path: Path) -> None:
    astore = AsyncStore(await _open(tmp_path / "db"))
    worst = 0.0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal worst
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - before - 0.001)

    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop))
    record = b"x" * 2000
    for start in range(0, 2000, 200):
        await asyncio.gather(
            *(astore.write([put(fpr(n), record, new=[(W, b"w%d" % (n % 10))])])
              for n in range(start, start + 200)),
            *(astore.lookup(W, b"w%d" % (n % 10), 10) for n in range(50)),
        )
    stop.set()
    await tick
    await astore.close()
    assert worst < 0.1, f"event loop stalled {worst * 1000:.0f} ms"


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="read_threads"):
        ExecutorConfig(read_threads=0).validate()
    with pytest.raises(ConfigError, match="commit_window_s"):
        ExecutorConfig(commit_window_s=-1).validate()
