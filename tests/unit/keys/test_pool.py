"""The node's worker pool: no processes until a job, none left once idle, a dead worker's jobs
done in-process, and one of 0 workers refusing to run anything."""

from __future__ import annotations

import asyncio
import os

import pytest

from meshkp.keys.pool import WorkerPool


def _pid(_: int) -> int:
    return os.getpid()


def _die_unless_in(parent: int) -> int:
    """Kills the worker process it runs in (as the OOM killer would); harmless in `parent`."""
    if os.getpid() != parent:
        os._exit(1)
    return 7


async def test_workers_start_with_the_first_job_and_stop_when_idle() -> None:
    pool = WorkerPool(2, idle_s=0.05)
    try:
        assert not pool.running  # constructing it started nothing
        pids = await pool.map(_pid, [(i,) for i in range(4)])
        assert os.getpid() not in pids and pool.running
        async with asyncio.timeout(5):
            while pool.running:
                await asyncio.sleep(0.01)
        assert await pool.run(_pid, 0) != os.getpid()  # started again for the next job
    finally:
        await pool.close()
    assert not pool.running


async def test_the_jobs_of_a_broken_pool_run_here_and_the_next_one_gets_new_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = WorkerPool(1, idle_s=None)
    try:
        assert await pool.run(_die_unless_in, os.getpid()) == 7
        assert "worker_pool_broken" in caplog.text
        assert await pool.run(_pid, 0) != os.getpid()
    finally:
        await pool.close()


def test_a_pool_of_no_workers_runs_nothing() -> None:
    pool = WorkerPool(0)
    assert not pool.enabled
    with pytest.raises(ValueError, match="in-process"):
        pool.submit(_pid, 0)
