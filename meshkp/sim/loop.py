"""SimEventLoop: an asyncio event loop whose time is a FakeClock, so coroutines run in sim time.

The production membership driver is asyncio code (join retries, push-pull awaits, leave). To run
it unchanged in a simulation, the loop's `time()` is the FakeClock's, and where a real loop would
block in `select()` until its next timer, this one fires the FakeClock's due timers instead and
jumps time forward. Nothing ever waits for the wall clock: a simulated hour takes only the CPU
time of its events, and a slow or loaded machine changes nothing but how long the run takes.

FakeClock timers (network deliveries, protocol timers) fire in batches without going through
the loop; the batch stops as soon as one of them hands the loop work (a task step, a resolved
future), so coroutines resume at the simulated instant their event happened.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from contextvars import Context
from typing import TypeVarTuple

from meshkp.clock import FakeClock

Ts = TypeVarTuple("Ts")


class SimDeadlock(RuntimeError):
    """The loop waits for something, but no timer is set: nothing can ever happen again."""


class SimEventLoop(asyncio.SelectorEventLoop):
    """A SelectorEventLoop driven by `clock`: idle time is skipped, never waited for."""

    def __init__(self, clock: FakeClock) -> None:
        self.fake_clock = clock
        self._has_work = False
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.fake_clock.now()

    # Both entry points by which a FakeClock callback can hand the loop something to do.
    def call_soon(self, callback: Callable[[*Ts], object], *args: *Ts,
                  context: Context | None = None) -> asyncio.Handle:
        self._has_work = True
        return super().call_soon(callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[[*Ts], object], *args: *Ts,
                context: Context | None = None) -> asyncio.TimerHandle:
        self._has_work = True
        return super().call_at(when, callback, *args, context=context)

    def jump(self, timeout: float | None) -> None:
        """Fire FakeClock timers up to `timeout` seconds ahead, until the loop has work to do."""
        clock = self.fake_clock
        self._has_work = False
        if timeout is None:  # the loop has no timer of its own: only a FakeClock timer can help
            while not self._has_work:
                due = clock.next_timer_at()
                if due is None:
                    raise SimDeadlock("the simulated loop is idle and no timer is set")
                clock.advance_to(due, self._work_arrived)
            return
        # Ends at the loop's own next timer (now + timeout) unless a FakeClock timer hands the
        # loop work first.
        clock.advance_to(clock.now() + timeout, self._work_arrived)

    def _work_arrived(self) -> bool:
        return self._has_work


class _JumpingSelector(selectors.DefaultSelector):
    """The loop's selector: real file descriptors are only polled, time is jumped instead."""

    def __init__(self, loop: SimEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Real descriptors: the loop's self-pipe (call_soon_threadsafe from a worker thread).
        ready = super().select(0)
        if not ready:
            self._loop.jump(timeout)
        return ready
