"""Project-wide test configuration: hypothesis profiles and the event-loop blocking guard."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest
from hypothesis import HealthCheck, settings

# The default suite must stay fast on 2 cores; `HYPOTHESIS_PROFILE=thorough` for deep runs.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# STYLE.md §10: a test fails if it blocks the event loop for longer than this.
LOOP_BLOCK_LIMIT_S = float(os.environ.get("MESHKP_LOOP_BLOCK_LIMIT_S", "0.1"))


class _BlockingWatch:
    """Records the longest single callback the loop ran (asyncio debug's slow-callback hook)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.where = ""


@pytest.fixture(autouse=True)
def _fail_on_blocked_loop(request: pytest.FixtureRequest):
    """Fail any async test whose event loop ran one callback for more than LOOP_BLOCK_LIMIT_S."""
    if not asyncio.iscoroutinefunction(getattr(request.node, "function", None)):
        yield
        return
    watch = _BlockingWatch()
    original = asyncio.events.Handle._run
    # Cyclic-GC pauses are not the test's blocking work (no executor can move them) and a
    # gen-2 pass over the whole session's heap takes ~50-150 ms on a loaded CI box: subtract it.
    gc_time = [0.0, 0.0]  # [current pause start, total paused]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[0] = time.perf_counter()
        else:
            gc_time[1] += time.perf_counter() - gc_time[0]

    def timed_run(handle: asyncio.events.Handle) -> None:
        start = time.perf_counter()
        paused = gc_time[1]
        try:
            original(handle)
        finally:
            elapsed = time.perf_counter() - start - (gc_time[1] - paused)
            if elapsed > watch.worst:
                watch.worst = elapsed
                watch.where = repr(handle)[:200]

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    try:
        yield
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        gc.callbacks.remove(on_gc)
    if watch.worst > LOOP_BLOCK_LIMIT_S and not request.node.get_closest_marker("allow_blocking"):
        pytest.fail(
            f"event loop blocked for {watch.worst * 1000:.0f} ms (limit "
            f"{LOOP_BLOCK_LIMIT_S * 1000:.0f} ms) in {watch.where}; move the work to an executor"
        )
