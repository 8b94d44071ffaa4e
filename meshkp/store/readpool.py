"""Reader threads for blocking store calls, answering asyncio callers in batches.

`loop.run_in_executor` costs ~70-190 µs per call on this 2-core machine (a concurrent.futures
Future chained to an asyncio one, and one loop wake-up per call): more than the LevelDB get it
runs. Here each thread takes every job waiting (up to `batch`), runs them, and hands all the
results to the loop with one `call_soon_threadsafe`: under load the wake-ups are shared, and a
get costs ~10-30 µs end to end (bench/store_bench.py measures it).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from meshkp.errors import StoreClosed

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class ReadPool:
    """`await pool.run(fn, *args)` runs fn on one of `threads` threads; threads start on first use."""

    def __init__(self, threads: int, batch: int, name: str) -> None:
        self._threads_wanted = threads
        self._batch = batch
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on a pool thread; its result or exception. Runs even if the caller is cancelled."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._stopped:
                raise StoreClosed(f"the store is closed ({self._name} threads stopped)")
            if not self._threads:
                for number in range(self._threads_wanted):
                    thread = threading.Thread(
                        target=self._serve, name=f"{self._name}-{number}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._jobs.put((loop, future, fn, args))
        return await future

    def shutdown(self) -> None:
        """Run the jobs already queued, then stop the threads (blocking; idempotent)."""
        with self._lock:
            self._stopped = True
            threads, self._threads = self._threads, []
            for _ in threads:
                self._jobs.put(None)
        for thread in threads:
            thread.join()

    def _serve(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self._batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            outcomes: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for loop, future, fn, args in jobs:
                try:
                    outcome: _Outcome = (future, fn(*args), None)
                except BaseException as exc:  # delivered to the caller, whatever it is
                    outcome = (future, None, exc)
                outcomes.setdefault(loop, []).append(outcome)
            for loop, results in outcomes.items():
                try:
                    loop.call_soon_threadsafe(_settle, results)
                except RuntimeError:
                    pass  # that event loop is closed; nobody is waiting
            if stop:
                return


def _settle(results: list[_Outcome]) -> None:
    for future, result, error in results:
        if future.done():
            continue  # the caller was cancelled
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
