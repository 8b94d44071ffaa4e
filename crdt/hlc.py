"""Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014, Fig. 5).

A timestamp is (wall_ms, logical). `wall_ms` tracks the largest physical time seen, locally
or in a received stamp; `logical` orders events within one millisecond and keeps the clock
moving when the wall clock stalls or jumps back. Stamps follow causality (a received stamp
is always below the next local one) and stay close to physical time, so a stamp (a
tombstone's, in meshkp) both orders events and says roughly when they happened. The wall
clock is injected, so tests drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crdt.encoding import MAX_UINT64, as_int, as_list, packb, unpackb
from crdt.errors import ClockDriftError


@dataclass(frozen=True, order=True, slots=True)
class HLCTimestamp:
    """A hybrid logical timestamp; ordered by (wall_ms, logical)."""

    wall_ms: int
    logical: int = 0

    def __post_init__(self) -> None:
        for name, value in (("wall_ms", self.wall_ms), ("logical", self.logical)):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_UINT64
            ):
                raise ValueError(f"HLC {name} must be an int in [0, 2**64), got {value!r}")

    def to_obj(self) -> list[int]:
        """[wall_ms, logical]."""
        return [self.wall_ms, self.logical]

    @classmethod
    def from_obj(cls, obj: object) -> HLCTimestamp:
        """Inverse of to_obj; raises DecodeError."""
        wall, logical = as_list(obj, "hlc timestamp", 2)
        return cls(as_int(wall, "hlc wall_ms"), as_int(logical, "hlc logical"))

    def to_wire(self) -> bytes:
        """Deterministic bytes."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes) -> HLCTimestamp:
        """Inverse of to_wire; raises DecodeError."""
        return cls.from_obj(unpackb(data, "hlc timestamp"))


ZERO = HLCTimestamp(0, 0)


class HybridLogicalClock:
    """One node's HLC: `now()` for local or send events, `update(stamp)` for receive events."""

    def __init__(
        self,
        wall_ms: Callable[[], float],
        *,
        max_drift_ms: int | None = None,
        last: HLCTimestamp = ZERO,
    ) -> None:
        # max_drift_ms: refuse received stamps this far ahead of our wall clock. Without it one
        # peer with a clock set to 2099 drags every node's stamps into 2099 for good
        # (Kulkarni et al. §3.3 bound ε). None accepts any stamp.
        # last: the largest stamp issued before a restart, so stamps stay monotonic across it.
        if max_drift_ms is not None and max_drift_ms < 0:
            raise ValueError("max_drift_ms must be >= 0 or None")
        self._wall_ms = wall_ms
        self._max_drift_ms = max_drift_ms
        self._last = last

    @classmethod
    def from_seconds(
        cls,
        wall_s: Callable[[], float],
        *,
        max_drift_ms: int | None = None,
        last: HLCTimestamp = ZERO,
    ) -> HybridLogicalClock:
        """A clock reading a wall clock in seconds, like time.time."""
        return cls(lambda: wall_s() * 1000.0, max_drift_ms=max_drift_ms, last=last)

    @property
    def last(self) -> HLCTimestamp:
        """The largest stamp issued or received so far."""
        return self._last

    def _physical(self) -> int:
        return max(0, int(self._wall_ms()))

    def now(self) -> HLCTimestamp:
        """A stamp for a local event, greater than every stamp issued or received before."""
        physical = self._physical()
        last = self._last
        if physical > last.wall_ms:
            stamp = HLCTimestamp(physical, 0)
        else:
            stamp = HLCTimestamp(last.wall_ms, last.logical + 1)
        self._last = stamp
        return stamp

    def update(self, received: HLCTimestamp) -> HLCTimestamp:
        """Merge a received stamp; return a stamp greater than it and than every earlier one."""
        physical = self._physical()
        if self._max_drift_ms is not None and received.wall_ms - physical > self._max_drift_ms:
            raise ClockDriftError(
                f"received HLC wall_ms={received.wall_ms} is {received.wall_ms - physical} ms "
                f"ahead of the local clock (max_drift_ms={self._max_drift_ms}); check NTP on "
                "the sender"
            )
        last = self._last
        wall = max(last.wall_ms, received.wall_ms, physical)
        if wall == last.wall_ms == received.wall_ms:
            logical = max(last.logical, received.logical) + 1
        elif wall == last.wall_ms:
            logical = last.logical + 1
        elif wall == received.wall_ms:
            logical = received.logical + 1
        else:
            logical = 0
        stamp = HLCTimestamp(wall, logical)
        self._last = stamp
        return stamp
