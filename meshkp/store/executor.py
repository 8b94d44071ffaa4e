"""AsyncStore: a Store for asyncio code; reads on a thread pool, writes on ONE writer thread.

Reads (`get`, `lookup`, ...) run on `read_threads` threads (meshkp/store/readpool.py): LevelDB
is thread-safe and plyvel drops the GIL inside LevelDB, so they never block the event loop and
overlap on both cores.

Writes and read-modify-write functions (`run_exclusive`) are jobs on one FIFO queue served by
one writer thread, so the store has a single writer (counters and Merkle nodes are
read-modify-write) and jobs apply in submission order. Group commit: the writer takes the first
job, then every job already queued, up to `max_group_writes` writes or `max_group_bytes`, runs
them in order against a staged view (meshkp/store/staged.py) and commits them as ONE synced
store write: one fsync for the group. Jobs that queue while a group's fsync runs make up the
next group, so concurrent writers share fsyncs without anyone waiting for them. The writer
waits up to `commit_window_s` for late joiners only while writers are concurrent (the group or
the one before it had more than one job): a lone writer (uploads one at a time) is committed at
once, never delayed by a window nobody can join.
Each caller gets its own result or exception: a write with a bad element is refused alone and
the rest of the group commits; if the commit itself fails, every job in it gets that error and
none of its writes is stored (the batch is atomic). A caller is answered only after its writes
are durable (when it asked for sync).

A caller cancelled while waiting may still have its write applied: once queued, it runs.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from meshkp.errors import ConfigError, StoreClosed, StoreFull, StoreUsageError
from meshkp.store.protocol import BulkWrite, IndexKind, RecordWrite, Store
from meshkp.store.readpool import ReadPool
from meshkp.store.staged import StagedView, StagedWrites

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """Threading and group-commit settings of AsyncStore."""

    # Reader threads. Cached LevelDB reads take microseconds and drop the GIL; 4 threads keep
    # both cores busy while one waits on a disk read, without a pile of idle threads.
    read_threads: int = 4
    # Reads one reader thread takes from the queue at once and answers with one loop wake-up.
    # Larger amortises more under load, but a slow read (a cold disk block, a scan page)
    # delays the others in its batch.
    read_batch: int = 16
    # How long the writer waits, after taking a job, for more jobs to share its fsync (seconds),
    # while writers are concurrent (this group or the last had more than one job; a lone write
    # never waits). Jobs that queue while a commit is running are grouped anyway; the window
    # only helps writers that arrive just after. Kept well under one fsync on SSDs (0.1-2 ms).
    # 0 disables waiting.
    commit_window_s: float = 0.0002
    # A group stops growing at this many RecordWrites (plain writes; run_exclusive jobs count
    # one each) or bytes of records, bounding the batch held in memory and the latency of the
    # first caller in it. 1,000 ~2 KB keys is ~2 MB, a fraction of the LevelDB write buffer.
    max_group_writes: int = 1000
    max_group_bytes: int = 8 * 1024 * 1024
    # Jobs queued or running before `write`/`run_exclusive` callers wait for room: bounds the
    # memory a burst of uploads or pushes from peers can pin while the disk is slow.
    max_pending_jobs: int = 10_000
    # Rows fetched per thread hop by iter_records / iter_extra.
    scan_page_rows: int = 256

    def validate(self) -> None:
        """ConfigError naming the first bad field."""
        for name in ("read_threads", "read_batch", "max_group_writes", "max_group_bytes",
                     "max_pending_jobs", "scan_page_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"store executor {name} must be an integer >= 1, got {value!r}")
        if not 0 <= self.commit_window_s <= 0.1:
            raise ConfigError(
                f"store executor commit_window_s must be 0 to 0.1 s, got {self.commit_window_s!r}"
            )


@dataclass(slots=True)
class WriterStats:
    """Counters of the writer thread, for metrics and tests."""

    jobs: int = 0
    groups: int = 0
    commits: int = 0  # store writes (one per group, more if a range read flushed it)
    synced_commits: int = 0  # those written with sync: one fsync each
    writes_committed: int = 0
    largest_group: int = 0
    window_waits: int = 0  # groups that waited (commit_window_s) for late joiners


@dataclass(eq=False, slots=True)
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    sync: bool
    writes: Sequence[RecordWrite] = ()
    fn: Callable[[Store], Any] | None = None
    done: bool = False
    weight: tuple[int, int] = field(default=(1, 0))


class AsyncStore:
    """Runs a Store off the event loop: pooled reads, one writer thread with group commit."""

    def __init__(self, store: Store, config: ExecutorConfig | None = None) -> None:
        self.store = store
        self.config = config or ExecutorConfig()
        self.config.validate()
        self.stats = WriterStats()
        self._readers = ReadPool(self.config.read_threads, self.config.read_batch, "store-read")
        self._read_view = _ReadOnly(store)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._closing = False
        self._room = asyncio.Semaphore(self.config.max_pending_jobs)
        # Jobs submitted and not answered yet (changed on the callers' event loop only).
        self._unanswered = 0
        self._last_group_jobs = 0  # jobs in the writer's last group (its thread only)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, fingerprint: bytes) -> bytes | None:
        """Store.get on a reader thread."""
        return await self._read(self.store.get, fingerprint)

    async def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        """Store.lookup on a reader thread."""
        return await self._read(self.store.lookup, kind, term, limit)

    async def counter(self, name: str) -> int:
        """Store.counter on a reader thread."""
        return await self._read(self.store.counter, name)

    async def get_extra(self, key: bytes) -> bytes | None:
        """Store.get_extra on a reader thread."""
        return await self._read(self.store.get_extra, key)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """fn(store) on a reader thread: several reads for one thread hop; writing is refused."""
        return await self._read(fn, self._read_view)

    async def iter_records(self, start: bytes = b"") -> AsyncIterator[tuple[bytes, bytes]]:
        """Store.iter_records (one snapshot), fetched a page at a time on reader threads."""
        async for row in self._pages(lambda: self.store.iter_records(start)):
            yield row

    async def iter_extra(self, prefix: bytes, start: bytes = b"") -> AsyncIterator[tuple[bytes, bytes]]:
        """Store.iter_extra (one snapshot), fetched a page at a time on reader threads."""
        async for row in self._pages(lambda: self.store.iter_extra(prefix, start)):
            yield row

    # -- writes ----------------------------------------------------------------------------

    async def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        """Apply writes as one atomic unit, group-committed with concurrent ones; durable if sync."""
        if isinstance(writes, Sequence) and not isinstance(writes, (bytes, str)):
            writes = tuple(writes)  # the caller may reuse its list while we wait
            size = sum(
                len(w.record)
                for w in writes
                if isinstance(w, RecordWrite) and isinstance(w.record, bytes)
            )
            weight = (len(writes), size)
        else:
            weight = (1, 0)  # refused by validation on the writer thread, alone
        await self._submit(writes=writes, fn=None, sync=sync, weight=weight)

    async def run_exclusive(self, fn: Callable[[Store], T], sync: bool = True) -> T:
        """fn(store) on the writer thread, in order with writes; its writes join the group commit.

        Use it for read-modify-write (get, merge, write): no other write runs in between. The
        store fn gets sees earlier writes of its group (meshkp/store/staged.py). As with a plain
        Store, writes fn made before raising are kept; its exception goes to its caller only.
        """
        result: T = await self._submit(writes=(), fn=fn, sync=sync, weight=(1, 0))
        return result

    @property
    def writing_alone(self) -> bool:
        """True when writes come one at a time: none is queued or running, and the writer's
        last group was a single job. A job submitted now runs at once and nobody is likely to
        join it, so a caller may do more of its work in the job itself (one thread hop)."""
        return self._unanswered == 0 and self._last_group_jobs <= 1

    async def close(self) -> None:
        """Finish queued jobs, stop the threads and close the store (idempotent)."""
        with self._submit_lock:
            if self._closing:
                return
            self._closing = True
            writer = self._writer
            if writer is not None:
                self._jobs.put(None)
        if writer is not None:
            await asyncio.to_thread(writer.join)
        await asyncio.to_thread(self._readers.shutdown)
        await asyncio.to_thread(self.store.close)

    # -- machinery -------------------------------------------------------------------------

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closing:
            raise StoreClosed("the store is closed (AsyncStore.close was called)")
        return await self._readers.run(fn, *args)

    async def _pages(
        self, open_rows: Callable[[], Iterator[tuple[bytes, bytes]]]
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        rows = await self._read(open_rows)
        page_rows = self.config.scan_page_rows
        try:
            while True:
                page = await self._read(lambda: list(islice(rows, page_rows)))
                for row in page:
                    yield row
                if len(page) < page_rows:
                    return
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()  # releases the snapshot; quick

    async def _submit(
        self,
        *,
        writes: Sequence[RecordWrite],
        fn: Callable[[Store], Any] | None,
        sync: bool,
        weight: tuple[int, int],
    ) -> Any:
        loop = asyncio.get_running_loop()
        await self._room.acquire()
        job = _Job(loop, loop.create_future(), sync, writes, fn, weight=weight)
        with self._submit_lock:
            if self._closing:
                self._room.release()
                raise StoreClosed("the store is closed (AsyncStore.close was called)")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._writer_main, name="store-writer", daemon=True
                )
                self._writer.start()
            self._jobs.put(job)
            self._unanswered += 1
        return await job.future

    def _writer_main(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            group = [first]
            stopping = self._gather(group)
            try:
                self._run_group(group)
            except BaseException as exc:  # a bug here must not strand callers forever
                log.exception("event=store_writer_failed jobs=%d", len(group))
                self._deliver([(job, None, exc) for job in group])
        log.info("event=store_writer_stopped jobs=%d groups=%d", self.stats.jobs, self.stats.groups)

    def _gather(self, group: list[_Job]) -> bool:
        """Add queued jobs to group within the bounds and window; True if the stop mark was seen."""
        config = self.config
        writes, size = group[0].weight
        deadline: float | None = None
        try:
            while writes < config.max_group_writes and size < config.max_group_bytes:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    # Nothing queued: wait for late joiners only while writers are concurrent.
                    if len(group) == 1 and self._last_group_jobs <= 1:
                        return False
                    if deadline is None:
                        deadline = time.monotonic() + config.commit_window_s
                        self.stats.window_waits += 1
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    try:
                        job = self._jobs.get(timeout=remaining)
                    except queue.Empty:
                        return False
                if job is None:
                    return True
                group.append(job)
                writes += job.weight[0]
                size += job.weight[1]
            return False
        finally:
            self._last_group_jobs = len(group)

    def _run_group(self, group: list[_Job]) -> None:
        staged = StagedWrites()
        sync = any(job.sync for job in group)
        finished: list[tuple[_Job, Any, BaseException | None]] = []

        def flush() -> None:
            failure = self._commit(staged, finished, sync)
            if failure is not None:
                raise failure  # into the function whose range read needed the flush

        view = StagedView(self.store, staged, flush)
        for job in group:
            if job.fn is None:
                try:
                    staged.stage(job.writes, view.counter)
                except StoreUsageError as exc:
                    self._deliver([(job, None, exc)])
                    continue
                finished.append((job, None, None))
            else:
                try:
                    result = job.fn(view)
                except Exception as exc:
                    finished.append((job, None, exc))
                else:
                    finished.append((job, result, None))
        # Counted before the callers are answered, so that they see their own group in stats.
        self.stats.jobs += len(group)
        self.stats.groups += 1
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        self._commit(staged, finished, sync)

    def _commit(
        self,
        staged: StagedWrites,
        finished: list[tuple[_Job, Any, BaseException | None]],
        sync: bool,
    ) -> Exception | None:
        """Write what is staged, answer the finished jobs; the write's exception, if any."""
        writes = staged.take()
        failure: Exception | None = None
        if writes:
            try:
                self.store.write(writes, sync=sync)
            except Exception as exc:
                if not isinstance(exc, StoreFull):  # the store logs a full disk once
                    log.error("event=store_commit_failed writes=%d error=%s", len(writes), exc)
                failure = exc
            else:
                self.stats.commits += 1
                self.stats.synced_commits += sync
                self.stats.writes_committed += len(writes)
        self._deliver([(job, result, error or failure) for job, result, error in finished])
        finished.clear()
        return failure

    def _deliver(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """Answer jobs (each once), with one loop wake-up per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            job = outcome[0]
            if not job.done:
                job.done = True
                by_loop.setdefault(job.loop, []).append(outcome)
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle, answers)
            except RuntimeError:
                pass  # the callers' event loop is gone; nobody is waiting

    def _settle(self, answers: list[tuple[_Job, Any, BaseException | None]]) -> None:
        for job, result, error in answers:
            self._room.release()
            self._unanswered -= 1
            if job.future.done():
                continue  # the caller was cancelled
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)


class _ReadOnly:
    """The Store given to AsyncStore.read functions: reads pass through, writes are refused."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, fingerprint: bytes) -> bytes | None:
        return self._store.get(fingerprint)

    def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        return self._store.lookup(kind, term, limit)

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        raise StoreUsageError("AsyncStore.read functions must not write; use run_exclusive")

    def iter_records(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._store.iter_records(start)

    def write_bulk(self, bulk: BulkWrite, sync: bool = True) -> None:
        raise StoreUsageError("AsyncStore.read functions must not write; use run_exclusive")

    def iter_index(self, start: bytes = b"") -> Iterator[bytes]:
        return self._store.iter_index(start)

    def counter(self, name: str) -> int:
        return self._store.counter(name)

    def get_extra(self, key: bytes) -> bytes | None:
        return self._store.get_extra(key)

    def iter_extra(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._store.iter_extra(prefix, start)

    def close(self) -> None:
        raise StoreUsageError("AsyncStore.read functions must not close the store")
