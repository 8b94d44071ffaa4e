"""SimEventLoop and ProcessClock: asyncio code in simulated time, and a pausable process clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from meshkp.clock import FakeClock, sleep
from meshkp.sim.loop import SimDeadlock, SimEventLoop
from meshkp.sim.process import ProcessClock

Sim = tuple[FakeClock, SimEventLoop]


@pytest.fixture
def clock_and_loop() -> Iterator[Sim]:
    clock = FakeClock()
    loop = SimEventLoop(clock)
    yield clock, loop
    loop.close()


def test_an_hour_of_sleeping_is_simulated_not_waited_for(clock_and_loop: Sim) -> None:
    clock, loop = clock_and_loop
    loop.run_until_complete(asyncio.sleep(3600))  # a real wait would hit the test timeout
    assert clock.now() == 3600


def test_coroutines_and_fake_timers_interleave_in_time_order(clock_and_loop: Sim) -> None:
    clock, loop = clock_and_loop
    seen: list[tuple[str, float]] = []
    for at in (0.5, 1.5, 2.5):
        clock.call_at(at, lambda at=at: seen.append(("timer", clock.now())))

    async def waiter() -> None:
        for _ in range(3):
            await sleep(clock, 1.0)  # on the FakeClock
            seen.append(("coro", clock.now()))
        await asyncio.sleep(0.25)  # on the loop, whose time is the same
        seen.append(("loop", clock.now()))

    loop.run_until_complete(waiter())
    assert seen == [("timer", 0.5), ("coro", 1.0), ("timer", 1.5), ("coro", 2.0),
                    ("timer", 2.5), ("coro", 3.0), ("loop", 3.25)]


def test_a_timeout_fires_in_simulated_time(clock_and_loop: Sim) -> None:
    clock, loop = clock_and_loop

    async def wait_forever() -> None:
        async with asyncio.timeout(10.0):
            await asyncio.get_running_loop().create_future()

    with pytest.raises(TimeoutError):
        loop.run_until_complete(wait_forever())
    assert clock.now() == 10.0


def test_waiting_on_nothing_is_a_deadlock_not_a_hang(clock_and_loop: Sim) -> None:
    _, loop = clock_and_loop
    with pytest.raises(SimDeadlock):
        loop.run_until_complete(loop.create_future())


def test_a_paused_process_runs_its_due_timers_late_on_resume_in_order() -> None:
    clock = FakeClock()
    process = ProcessClock(clock)
    fired: list[tuple[str, float]] = []
    process.call_at(1.0, lambda: fired.append(("a", clock.now())))
    process.call_at(2.0, lambda: fired.append(("b", clock.now())))
    cancelled = process.call_at(2.5, lambda: fired.append(("c", clock.now())))
    process.call_at(9.0, lambda: fired.append(("d", clock.now())))
    process.pause()
    clock.advance(3.0)
    cancelled.cancel()  # cancelled while held: never runs
    assert fired == []
    process.resume()
    assert fired == [("a", 3.0), ("b", 3.0)]
    clock.advance(10.0)
    assert fired[-1] == ("d", 9.0)
