"""FakeClock fires timers in time order, only when advanced; SystemClock is monotonic."""

import asyncio

import pytest

from meshkp.clock import FakeClock, SystemClock


def test_timers_fire_in_order_only_when_advanced() -> None:
    clock = FakeClock(start=100.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: fired.append(("b", clock.now())))
    clock.call_at(101.0, lambda: fired.append(("a", clock.now())))
    clock.call_at(101.0, lambda: fired.append(("a2", clock.now())))  # ties: scheduling order
    assert fired == [] and clock.pending() == 3
    assert clock.advance(1.5) == 2
    assert fired == [("a", 101.0), ("a2", 101.0)]
    assert clock.now() == 101.5
    clock.advance(10.0)
    assert fired[-1] == ("b", 102.0)
    assert clock.now() == 111.5


def test_cancelled_timers_do_not_fire() -> None:
    clock = FakeClock()
    fired: list[int] = []
    handle = clock.call_later(1.0, lambda: fired.append(1))
    handle.cancel()
    assert clock.next_timer_at() is None
    clock.advance(5.0)
    assert fired == []


def test_timers_scheduled_by_timers_fire_in_the_same_advance() -> None:
    clock = FakeClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now())
        if len(seen) < 5:
            clock.call_later(0.2, tick)

    clock.call_later(0.2, tick)
    clock.advance(10.0)
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_past_deadlines_fire_now_and_time_never_goes_back() -> None:
    clock = FakeClock(start=5.0)
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.now()))
    clock.advance(0.0)
    assert fired == [5.0]
    with pytest.raises(ValueError):
        clock.advance(-1.0)


async def test_system_clock_runs_timers_on_the_loop() -> None:
    clock = SystemClock()
    t0 = clock.now()
    done = asyncio.Event()
    clock.call_later(0.01, done.set)
    await asyncio.wait_for(done.wait(), 2.0)
    assert clock.now() >= t0 + 0.009
