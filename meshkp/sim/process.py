"""ProcessClock: one simulated process's timers on the shared FakeClock, stopped while paused.

A SIGSTOPped process runs no timers; on SIGCONT every timer that fell due meanwhile fires at
once, late. The SimNetwork holds the process's incoming frames during the pause; this holds its
timers (the protocol timer, join backoff, push-pull timeouts), so the driver needs no notion of
being paused.
"""

from __future__ import annotations

from collections.abc import Callable

from meshkp.clock import FakeClock, TimerHandle


class _ProcessTimer:
    """Fires `callback` through its ProcessClock. Holds no handle of the FakeClock timer that
    calls it: that would be a reference cycle per timer, and a simulation arms millions."""

    __slots__ = ("process", "callback", "cancelled")

    def __init__(self, process: ProcessClock, callback: Callable[[], None]) -> None:
        self.process = process
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if self.cancelled:
            return
        if self.process.paused:
            self.process.held.append(self)
        else:
            self.callback()


class ProcessClock:
    """A Scheduler over `clock` whose callbacks wait while the process is paused."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.now = clock.now  # the shared time; called on every message, so without a hop
        self.paused = False
        self.held: list[_ProcessTimer] = []  # timers that fell due during the pause, in order

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ProcessTimer(self, callback)
        self._clock.call_at(when, timer.fire)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self._clock.now() + max(0.0, delay), callback)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Run, in order, the timers that fell due during the pause (cancelled ones excepted)."""
        self.paused = False
        held, self.held = self.held, []
        for timer in held:
            if not timer.cancelled:
                timer.callback()
