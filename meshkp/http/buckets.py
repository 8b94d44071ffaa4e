"""Token buckets per client and the bounded table that holds them (no I/O, `now` passed in).

Every rate of meshkp/http/ratelimit.py is one token bucket: a bucket holds at most `burst`
tokens and refills at `rate` tokens per second; a request takes `cost` tokens or is refused
with the seconds until it could take them. The ban rules are buckets too: "more than N
requests in W seconds" is a bucket of N tokens refilling N/W per second, and overflowing it
bans. The rates are passed on every call, so a policy change applies to the next request.

The table keeps one `ClientState` per client key and is bounded by `max_clients`: without a
bound, a client cycling source addresses (an IPv6 /48 holds 65,536 /64s) would grow it without
end. The least recently seen client is evicted first (an OrderedDict moved to the end on each
touch); banned clients are skipped while evicting, a few times, so that a flood of new
addresses does not simply wash a ban out.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

# Banned clients skipped per eviction before one is evicted anyway: bounds the eviction's work
# when the whole table is banned clients.
EVICT_SKIPS = 8


@dataclass(frozen=True, slots=True)
class Rate:
    """A bucket's refill (tokens per second) and its size."""

    per_second: float
    burst: float

    @classmethod
    def per_window(cls, count: int, seconds: float) -> Rate:
        """The bucket of "at most `count` in `seconds`" (ban rules)."""
        return cls(count / seconds, float(count))


class TokenBucket:
    """Tokens left as of `stamp`, refilled lazily when next taken; starts full.

    On every request, so kept lean: two floats, no allocation, no call beyond itself (a
    `min()` and a helper method cost more than the arithmetic, ~0.3 µs against ~0.13 µs).
    """

    __slots__ = ("stamp", "tokens")

    def __init__(self) -> None:
        # Infinite: full, whatever the burst (known only at first use, and capped there).
        self.tokens = math.inf
        self.stamp = 0.0

    def take(self, now: float, cost: float, rate: Rate) -> float:
        """Take `cost` tokens: 0.0 if taken, else the seconds until they would be there.

        A cost above the burst takes the whole burst: it could never be paid otherwise.
        """
        burst = rate.burst
        tokens = self.tokens + (now - self.stamp) * rate.per_second
        if tokens > burst:
            tokens = burst
        self.stamp = now
        if cost > burst:
            cost = burst
        if tokens >= cost:
            self.tokens = tokens - cost
            return 0.0
        self.tokens = tokens
        return (cost - tokens) / rate.per_second

    def charge(self, now: float, cost: float, rate: Rate) -> None:
        """Take `cost` tokens after the fact, into debt if need be (at most one burst deep),
        so that the next requests wait for work that was already done."""
        tokens = min(rate.burst, self.tokens + (now - self.stamp) * rate.per_second)
        self.stamp = now
        self.tokens = max(-rate.burst, tokens - cost)


class ClientState:
    """What the limiter remembers of one client: its flood rule's bucket (every request takes
    from it), a bucket per other kind, and its ban."""

    __slots__ = ("banned_until", "buckets", "ban_reason", "requests")

    def __init__(self) -> None:
        self.requests = TokenBucket()
        self.buckets: dict[str, TokenBucket] = {}
        self.banned_until = 0.0
        self.ban_reason = ""

    def bucket(self, kind: str) -> TokenBucket:
        found = self.buckets.get(kind)
        if found is None:
            found = self.buckets[kind] = TokenBucket()
        return found

    def banned(self, now: float) -> float:
        """Seconds of ban left (0.0: not banned)."""
        return max(0.0, self.banned_until - now)


class BucketTable:
    """ClientState by client key, at most `max_clients` of them (LRU, bans kept longer)."""

    def __init__(self) -> None:
        self._clients: OrderedDict[str, ClientState] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[ClientState]:
        return iter(self._clients.values())

    def peek(self, key: str) -> ClientState | None:
        """The state of `key` if remembered, without touching its recency."""
        return self._clients.get(key)

    def get(self, key: str, now: float, max_clients: int) -> ClientState:
        """The state of `key` (created if new), marked as the most recently seen."""
        state = self._clients.get(key)
        if state is not None:
            self._clients.move_to_end(key)
            return state
        state = self._clients[key] = ClientState()
        while len(self._clients) > max_clients:
            self._evict_one(now)
        return state

    def _evict_one(self, now: float) -> None:
        for _ in range(EVICT_SKIPS):
            key, oldest = next(iter(self._clients.items()))
            if not oldest.banned(now):
                break
            self._clients.move_to_end(key)
        self._clients.popitem(last=False)
        self.evicted += 1

    def banned_now(self, now: float) -> int:
        return sum(1 for state in self._clients.values() if state.banned(now))
