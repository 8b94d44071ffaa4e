"""The node's CPU pool: worker processes for pure, CPU-heavy functions of key data.

One Python process uses one core (the GIL), so parsing big uploads, validating the records of
a bootstrap and normalising a bulk load run in worker processes. One `WorkerPool` serves them
all: the node owns one and passes it to the key parser and the replicator; `meshkp load` owns
one for the loader. Constructing it does no I/O; the workers start with the first job and
stop `idle_s` after the last one (an idle node keeps no processes: ~30 MB each), or when the
owner closes the pool. A worker that dies (OOM killer, signal) breaks the pool: the jobs of
`run`/`map` then run in a thread of this process, and the next job starts fresh workers.

Workers are started by a fork server by default, never forked from the serving process
itself, whose threads (LevelDB, the store executor) may hold locks at fork time. A bulk load
forks them ("fork") before it opens its store: faster, and it has no threads yet.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
# Seconds without a job before the workers are stopped. Jobs of one burst (the pages of a
# bootstrap, the uploads of a big import) come far closer together than this.
IDLE_S = 2.0


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class WorkerPool:
    """Lazily started worker processes; `workers` = 0 means none (callers stay in-process)."""

    def __init__(self, workers: int, context: str = "forkserver", idle_s: float | None = IDLE_S) -> None:
        self.workers = workers
        self.context = context
        self.idle_s = idle_s
        self._executor: ProcessPoolExecutor | None = None
        self._active = 0
        self._idle: asyncio.TimerHandle | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def enabled(self) -> bool:
        return self.workers > 0

    @property
    def running(self) -> bool:
        """Whether worker processes exist now."""
        return self._executor is not None

    def start(self) -> None:
        """Start every worker now (a bulk load does, before it opens its store)."""
        executor = self._started()
        for future in [executor.submit(os.getpid) for _ in range(self.workers)]:
            future.result()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """fn(*args) in a worker, for synchronous callers (BrokenProcessPool from its result)."""
        return self._started().submit(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker (in a thread here if the pool broke); its exception if it raises."""
        return (await self.map(fn, [args]))[0]

    async def map(self, fn: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T]:
        """fn(*args) for each args of `calls`, spread over the workers, results in order."""
        loop = asyncio.get_running_loop()
        self._busy()
        try:
            executor = await self._started_off_loop()
            return list(await asyncio.gather(
                *(loop.run_in_executor(executor, fn, *args) for args in calls)))
        except BrokenProcessPool as exc:
            log.warning("event=worker_pool_broken error=%s action=in_process", exc)
            self._drop()
            return list(await asyncio.gather(
                *(loop.run_in_executor(None, fn, *args) for args in calls)))
        finally:
            self._done(loop)

    def shutdown(self) -> None:
        """Stop the workers, waiting for them (idempotent); the next job starts new ones."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    async def close(self) -> None:
        """shutdown() off the event loop."""
        await asyncio.to_thread(self.shutdown)

    async def _started_off_loop(self) -> ProcessPoolExecutor:
        # Starting the processes (and, the first time, the fork server) takes ~0.1-0.5 s: in a
        # thread, one start at a time.
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._executor is None:
                await asyncio.to_thread(self.start)
        assert self._executor is not None
        return self._executor

    def _started(self) -> ProcessPoolExecutor:
        if not self.enabled:
            raise ValueError("a WorkerPool of 0 workers runs nothing; run the job in-process")
        if self._executor is None:
            context = multiprocessing.get_context(self.context)
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
            log.info("event=worker_pool_started workers=%d context=%s", self.workers, self.context)
        return self._executor

    def _busy(self) -> None:
        self._active += 1
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _done(self, loop: asyncio.AbstractEventLoop) -> None:
        self._active -= 1
        if self._active == 0 and self.idle_s is not None and self._executor is not None:
            self._idle = loop.call_later(self.idle_s, self._stop_idle)

    def _stop_idle(self) -> None:
        self._idle = None
        if self._active == 0 and self._executor is not None:
            log.info("event=worker_pool_idle action=stop")
            self._drop()

    def _drop(self) -> None:
        """Let go of the workers without waiting for them (they exit on their own)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
