"""Join retry: backoff grows with jitter inside bounds; stops at the first success or the bound."""

import random

import pytest

from meshkp.discovery.backoff import RetryPolicy, SeedSource, gather_seeds, join_with_retry
from meshkp.errors import ConfigError
from meshkp.net.addr import Addr


class FixedSeeds(SeedSource):
    def __init__(self, addrs: list[Addr]) -> None:
        self.addrs = addrs

    def describe(self) -> str:
        return "fixed"

    async def resolve(self) -> list[Addr]:
        return list(self.addrs)


class FakeTime:
    """Simulated clock: sleep() advances it instantly, so retries take no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_delay_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(1)
    for attempt, step in enumerate([1, 2, 4, 8, 8, 8]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # really jittered
    assert policy.delay(10_000, rng) <= 8.0  # no overflow on huge attempt counts


def test_policy_validation() -> None:
    for bad in (RetryPolicy(base=0), RetryPolicy(base=2, cap=1), RetryPolicy(max_attempts=0),
                RetryPolicy(max_elapsed=0)):
        with pytest.raises(ConfigError):
            bad.validate()


async def test_retries_until_a_seed_answers() -> None:
    clock = FakeTime()
    calls: list[list[Addr]] = []

    async def join(addrs: list[Addr]) -> int:
        calls.append(addrs)
        return 1 if len(calls) == 4 else 0

    outcome = await join_with_retry([FixedSeeds([("10.0.0.1", 7946)])], join,
                                    RetryPolicy(base=1, cap=4), sleep=clock.sleep,
                                    monotonic=clock.monotonic, rng=random.Random(0))
    assert outcome.joined == 1 and outcome.attempts == 4
    assert len(clock.sleeps) == 3 and all(0.5 <= s <= 4 for s in clock.sleeps)


async def test_gives_up_after_max_attempts() -> None:
    clock = FakeTime()

    async def never(addrs: list[Addr]) -> int:
        return 0

    outcome = await join_with_retry([FixedSeeds([("10.0.0.1", 1)])], never,
                                    RetryPolicy(max_attempts=5), sleep=clock.sleep,
                                    monotonic=clock.monotonic)
    assert outcome == outcome.__class__(0, 5, clock.now)
    assert len(clock.sleeps) == 4


async def test_gives_up_at_max_elapsed() -> None:
    clock = FakeTime()

    async def never(addrs: list[Addr]) -> int:
        return 0

    outcome = await join_with_retry([FixedSeeds([])], never,
                                    RetryPolicy(base=10, cap=10, max_attempts=1000,
                                                max_elapsed=60), sleep=clock.sleep,
                                    monotonic=clock.monotonic)
    assert outcome.joined == 0 and clock.now <= 60 and outcome.attempts < 20


async def test_gather_dedups_and_excludes_self() -> None:
    me = ("127.0.0.1", 7000)
    seeds = [FixedSeeds([me, ("127.0.0.1", 7001)]), FixedSeeds([("127.0.0.1", 7001)])]
    assert await gather_seeds(seeds, {me}) == [("127.0.0.1", 7001)]
