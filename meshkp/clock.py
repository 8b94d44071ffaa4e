"""Injected time: a monotonic `Clock`, the real `SystemClock` and a `FakeClock` for simulations.

Protocol cores never read the time themselves: the driver passes `now` (seconds, monotonic) into
every call. Drivers that need timers use `call_at`/`call_later` (and `sleep` in coroutines); with
`FakeClock` those fire only when time is advanced, so a 50-node cluster runs in simulated seconds
(STYLE.md §2).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock in seconds."""

    def now(self) -> float: ...


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it fires."""

    def cancel(self) -> None: ...


class Scheduler(Clock, Protocol):
    """A clock that can also run callbacks at a given time."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class SystemClock:
    """The real monotonic clock; timers run on the running asyncio loop (whose time is monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        # loop.time() and time.monotonic() share an epoch on CPython, but convert anyway.
        return loop.call_at(loop.time() + (when - self.now()), callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


async def sleep(clock: Scheduler, delay: float) -> None:
    """asyncio.sleep on the injected scheduler's time (a FakeClock's, in simulations)."""
    done = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = clock.call_later(delay, wake)
    try:
        await done
    finally:
        timer.cancel()


class FakeTimer:
    """A FakeClock timer; `cancel()` makes it a no-op when its time comes."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Simulated time that moves only in `advance()`, firing due timers in time order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, FakeTimer]] = []
        # Ties fire in scheduling order, which keeps seeded simulations reproducible.
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(max(when, self._now), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        return self.call_at(self._now + max(0.0, delay), callback)

    def pending(self) -> int:
        """Number of timers not yet fired or cancelled."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def next_timer_at(self) -> float | None:
        """When the earliest live timer fires, or None."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> int:
        """Move time forward by `seconds`, firing every timer due by then; returns how many fired."""
        if seconds < 0:
            raise ValueError(f"FakeClock cannot go backwards (advance({seconds}))")
        return self.advance_to(self._now + seconds)

    def advance_to(self, target: float, until: Callable[[], bool] | None = None) -> int:
        """Move time forward to `target`, firing due timers (including ones they schedule).

        With `until`, stop as soon as it holds after a timer fired: time then stays at that
        timer's (meshkp/sim/loop.py hands over to asyncio there). Returns how many fired.
        """
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= target:
            when, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            if when > self._now:
                self._now = when
            timer.cancelled = True  # a handle cancelled after firing is a harmless no-op
            timer.callback()
            fired += 1
            if until is not None and until():
                return fired
        self._now = max(self._now, target)
        return fired
