"""Lifeguard local-health awareness (Lifeguard §4.1, memberlist awareness.go).

A node that misses nacks it expected, or has to refute suspicions about itself, is probably the
slow one (CPU starved, paused, its network degraded). Its health score rises, and its own probe
interval is stretched by (score + 1), so it stops accusing healthy peers while it recovers.
"""

from __future__ import annotations


class Awareness:
    """A health score in [0, max_multiplier - 1]; 0 is healthy."""

    __slots__ = ("_max", "_score")

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError(f"max_multiplier must be >= 1, got {max_multiplier}")
        self._max = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        return self._score

    def apply_delta(self, delta: int) -> int:
        """Add delta, clamped to [0, max - 1]; return the new score."""
        self._score = min(self._max - 1, max(0, self._score + delta))
        return self._score

    def scale(self, timeout: float) -> float:
        """Stretch a timeout by (score + 1): worse health, longer timeouts."""
        return timeout * (self._score + 1)
