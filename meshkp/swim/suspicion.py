"""One suspicion timer with Lifeguard's decay by independent confirmations (memberlist suspicion.go).

The timer starts at `max_timeout` and moves towards `min_timeout` as distinct members report the
same suspect (Lifeguard §4.2, "LHA-Suspicion"). There are no callbacks: the core asks for
`deadline` and compares it with `now` in tick().
"""

from __future__ import annotations

from meshkp.swim.formulas import remaining_suspicion_time


class Suspicion:
    """Suspicion of one member, started at `start` by `source` (who is not counted as a confirmer)."""

    __slots__ = ("k", "min_timeout", "max_timeout", "start", "_confirmers", "_n", "deadline",
                 "verify_seq", "verify_helpers")

    def __init__(
        self, source: str, k: int, min_timeout: float, max_timeout: float, start: float
    ) -> None:
        self.k = k
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.start = start
        # The suspicion we started may be gossiped back to us: never count it as a confirmation.
        self._confirmers = {source}
        self._n = 0
        # With nobody to confirm (small cluster), waiting for max would only delay detection.
        self.deadline = start + (max_timeout if k >= 1 else min_timeout)
        # Sequence number of the final probe sent when the timer ran out (None: not probing).
        self.verify_seq: int | None = None
        # The members asked to ping-req the suspect for that final probe: they may ack for it.
        self.verify_helpers: frozenset[str] = frozenset()

    @property
    def confirmations(self) -> int:
        return self._n

    def confirm(self, source: str, now: float) -> bool:
        """Count `source` as a new independent confirmer; True if this was new information."""
        if self._n >= self.k or source in self._confirmers:
            return False
        self._confirmers.add(source)
        self._n += 1
        elapsed = now - self.start
        remaining = remaining_suspicion_time(
            self._n, self.k, elapsed, self.min_timeout, self.max_timeout
        )
        # A negative remainder means "already due": tick() fires it at the next call.
        if self.verify_seq is None:  # a final probe in flight keeps its own deadline
            self.deadline = now + remaining
        return True

    def expired(self, now: float) -> bool:
        return now >= self.deadline
