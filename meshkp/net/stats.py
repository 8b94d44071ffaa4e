"""Transport counters: frames sent, received and dropped (by reason), exposed to Prometheus.

One NetStats per node, not module-global Prometheus metrics, so several nodes in one process
(simulations, tests) keep separate counts. `collector()` adapts it to a CollectorRegistry.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from meshkp.net.compression import CompressionStats

log = logging.getLogger("meshkp.net.drop")

# Every reason a frame can be dropped for; the label set stays small and fixed.
DROP_REASONS = (
    "oversize",  # bigger than the transport's bound, refused before decrypting
    "decrypt",  # no installed key opens it: wrong cluster key, tampering, or not meshkp at all
    "version",  # a wire version this node does not speak
    "decode",  # not a well-formed frame (msgpack, header, reserved keys)
    "unknown_type",  # a type code no handler is registered for
    "handler_error",  # the protocol's handler raised on it (a bug, logged with a traceback)
    "conn_limit",  # TCP connection refused: too many concurrent connections
    "timeout",  # TCP peer too slow to send a whole frame
    "send_oversize",  # our own frame was too big to send (a bug in the sender)
    "send_error",  # the OS refused to send (unreachable, buffer full)
    "signature",  # opened with the cluster key, but its Ed25519 signature does not verify
    "identity",  # signed, but the sender id it claims is not the signing key's node
    "replay",  # seen already, or from an earlier life of its sender
    "clock",  # its send time is outside the skew bound (ReplayLimits.max_skew)
    "no_sender",  # a control frame without a sender id
    "statement",  # a membership statement (alive, suspect, dead, leave) not signed by its node
    "member_limit",  # a new member refused: the member table is full (swim.max_members)
    "queue_full",  # a peer's bounded send queue was full: its oldest frame was dropped
)

# Drops that only a holder of the cluster key can cause, by forging or replaying: each is
# logged at warning, at most once per WARN_INTERVAL per reason so a flood cannot fill the log
# (the counters count every one).
FORGERY_REASONS = frozenset({"signature", "identity", "replay", "statement"})
WARN_INTERVAL = 1.0


class NetStats:
    """Counts of frames and bytes per transport ("udp"/"tcp") and drops per (transport, reason)."""

    def __init__(self) -> None:
        self.dropped: Counter[tuple[str, str]] = Counter()
        self.sent_frames: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()
        self.received_frames: Counter[str] = Counter()
        self.received_bytes: Counter[str] = Counter()
        self._warned_at: dict[str, float] = {}
        # Frames compressed and inflated by the codec of this transport (compression.py).
        self.compression = CompressionStats()

    def drop(self, transport: str, reason: str, peer: object, detail: str) -> None:
        """Count one dropped frame and log it at debug (reasons a bug causes log at warning)."""
        self.dropped[(transport, reason)] += 1
        level = logging.WARNING if reason in ("handler_error", "send_oversize") else logging.DEBUG
        if reason in FORGERY_REASONS:
            now = time.monotonic()
            if now - self._warned_at.get(reason, -WARN_INTERVAL) >= WARN_INTERVAL:
                self._warned_at[reason] = now
                level = logging.WARNING
        log.log(level, "event=frame_dropped transport=%s reason=%s peer=%s detail=%r",
                transport, reason, peer, detail)

    def sent(self, transport: str, nbytes: int) -> None:
        """Count one frame put on the wire."""
        self.sent_frames[transport] += 1
        self.sent_bytes[transport] += nbytes

    def received(self, transport: str, nbytes: int) -> None:
        """Count one frame delivered to the protocol."""
        self.received_frames[transport] += 1
        self.received_bytes[transport] += nbytes

    def dropped_total(self, reason: str | None = None) -> int:
        """Return drops over all transports, optionally only those with one reason."""
        return sum(n for (_, r), n in self.dropped.items() if reason is None or r == reason)

    def snapshot(self) -> dict[str, object]:
        """Return a JSON-ready view for /cluster/status."""
        return {
            "frames_dropped": {f"{t}/{r}": n for (t, r), n in sorted(self.dropped.items())},
            "frames_sent": dict(self.sent_frames),
            "bytes_sent": dict(self.sent_bytes),
            "frames_received": dict(self.received_frames),
            "bytes_received": dict(self.received_bytes),
            "compression": self.compression.snapshot(),
        }

    def collector(self, prefix: str = "meshkp") -> Collector:
        """Return a Prometheus collector reading these counters at scrape time.

        `prefix` names the families (`PREFIX_frames_dropped_total`...), so that a second
        NetStats of the same node (the control plane's) registers beside membership's."""
        return _NetStatsCollector(self, prefix)


class _NetStatsCollector(Collector):
    def __init__(self, stats: NetStats, prefix: str) -> None:
        self._stats = stats
        self._prefix = prefix

    def collect(self) -> Iterator[CounterMetricFamily]:
        s = self._stats
        dropped = CounterMetricFamily(
            f"{self._prefix}_frames_dropped", "Frames dropped before reaching the protocol, by reason",
            labels=["transport", "reason"],
        )
        for (transport, reason), n in sorted(s.dropped.items()):
            dropped.add_metric([transport, reason], n)
        yield dropped
        for name, doc, counts in (
            ("frames_sent", "Frames sent", s.sent_frames),
            ("bytes_sent", "Sealed bytes sent", s.sent_bytes),
            ("frames_received", "Frames delivered to the protocol", s.received_frames),
            ("bytes_received", "Sealed bytes of delivered frames", s.received_bytes),
        ):
            family = CounterMetricFamily(f"{self._prefix}_{name}", doc, labels=["transport"])
            for transport, n in sorted(counts.items()):
                family.add_metric([transport], n)
            yield family
