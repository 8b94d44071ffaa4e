"""Join retries: exponential backoff with jitter, bounded in attempts and total time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from meshkp.errors import ConfigError
from meshkp.net.addr import Addr, format_addr

log = logging.getLogger(__name__)

# Joins the addresses it is given; returns how many peers answered (0 = try again later).
JoinFn = Callable[[list[Addr]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a starting node keeps trying its seeds before it goes on alone."""

    # First delay, seconds. Short, because the common failure is "seed starts a moment later".
    base: float = 0.5
    # Longest delay, seconds. Serf's retry_join waits 30 s between attempts.
    cap: float = 30.0
    # Attempts before giving up. With base 0.5 and cap 30 this spans about 10 minutes:
    # long enough for a Kubernetes rollout to bring the seeds up, short enough to be noticed.
    max_attempts: int = 30
    # Wall-clock bound on the whole retry loop, seconds.
    max_elapsed: float = 600.0

    def validate(self) -> None:
        """Raise ConfigError on non-positive or inverted bounds."""
        if self.base <= 0 or self.cap < self.base:
            raise ConfigError("retry policy needs 0 < base <= cap")
        if self.max_attempts < 1 or self.max_elapsed <= 0:
            raise ConfigError("retry policy needs max_attempts >= 1 and max_elapsed > 0")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt number `attempt` (0-based): "equal jitter" backoff.

        Half the exponential step is fixed, half random: nodes started together spread out
        (no thundering herd on the seeds) yet never retry in a tight loop.
        """
        step = min(self.cap, self.base * float(2 ** min(attempt, 32)))
        return step / 2 + rng.uniform(0, step / 2)


class SeedSource:
    """Something that yields candidate gossip addresses (IP literals) when asked."""

    def describe(self) -> str:
        """A short label for logs."""
        raise NotImplementedError

    async def resolve(self) -> list[Addr]:
        """Current candidates; resolution failures are logged and give an empty list."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """What join_with_retry achieved."""

    joined: int  # peers that answered on the successful attempt (0 = gave up)
    attempts: int
    elapsed: float


async def gather_seeds(sources: Sequence[SeedSource], exclude: set[Addr]) -> list[Addr]:
    """Resolve all sources concurrently; return unique addresses in order, minus `exclude`."""
    results = await asyncio.gather(*(s.resolve() for s in sources))
    seen: dict[Addr, None] = {}
    for addrs in results:
        for addr in addrs:
            if addr not in exclude:
                seen.setdefault(addr, None)
    return list(seen)


async def join_with_retry(
    sources: Sequence[SeedSource],
    join: JoinFn,
    policy: RetryPolicy | None = None,
    *,
    exclude: set[Addr] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> JoinOutcome:
    """Resolve seeds and join until one answers or the policy's bounds run out."""
    policy = policy or RetryPolicy()
    policy.validate()
    rng = rng or random.Random()
    start = monotonic()
    for attempt in range(policy.max_attempts):
        addrs = await gather_seeds(sources, exclude or set())
        joined = await join(addrs) if addrs else 0
        elapsed = monotonic() - start
        if joined > 0:
            log.info("event=join_ok peers=%d attempt=%d elapsed_s=%.1f", joined, attempt + 1,
                     elapsed)
            return JoinOutcome(joined, attempt + 1, elapsed)
        delay = policy.delay(attempt, rng)
        log.info("event=join_retry attempt=%d seeds=%s candidates=%s next_in_s=%.1f",
                 attempt + 1, ",".join(s.describe() for s in sources),
                 ",".join(format_addr(a) for a in addrs) or "-", delay)
        if elapsed + delay > policy.max_elapsed or attempt + 1 == policy.max_attempts:
            break
        await sleep(delay)
    elapsed = monotonic() - start
    log.warning("event=join_gave_up attempts=%d elapsed_s=%.1f hint=node_runs_alone_until_"
                "a_peer_joins_it", attempt + 1, elapsed)
    return JoinOutcome(0, attempt + 1, elapsed)
