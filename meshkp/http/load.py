"""This node's load, sampled every `load_interval`: what GET /cluster/load and the agent check read.

Each sample covers the window since the previous one (`load_interval`, 2 s by default):

- request rates per operation, from the request counters the /metrics collector keeps;
- p50/p99 latency per operation, from the same latency histogram: the quantile is interpolated
  inside its bucket, as Prometheus' histogram_quantile does, so it is exact to a bucket's width
  (1, 2.5, 5, 10, 25, 50 ms...);
- CPU: the process's CPU seconds per wall second (1.0 = one core busy: the event loop, which
  answers every request, runs on one core);
- event-loop lag: how late a 100 ms timer fired, mean and max over the window;
- open connections of the HTTP listener (idle keep-alive ones included);
- the live performance figures: local read latency (p99 of the lookups of the last
  READ_WINDOWS windows, all lookup operations together), replicated-write latency (p99 of the
  last pushes received, from the write's first acceptance to its merge here, by the two nodes'
  wall clocks), consensus
  commit latency (p99 of the last policy changes proposed here) and the sync age (seconds since
  the last completed anti-entropy round);
- reach: the peers that answered the node's last load exchange, with the round trip of each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from meshkp.http.labels import LOOKUP_OPS
from meshkp.http.metrics import LATENCY_BUCKETS, HttpMetrics
from meshkp.replication.load_wire import LoadSummary, OpLoad

# Timer of the loop-lag probe: short enough to see a 50 ms stall, cheap (10 wake-ups a second).
LAG_PROBE_S = 0.1
# Lag probes kept between two samples (a sample every 2 s takes ~20; the bound is for a
# sampler that is not read).
_MAX_LAG_PROBES = 1024
# Operations of client traffic (HKP); the others are operators' and monitoring's.
CLIENT_OPS = (*sorted(LOOKUP_OPS), "other", "add", "hashquery", "health")
READ_OPS = (*sorted(LOOKUP_OPS), "other")
# Windows the local read latency of /cluster/performance covers (a minute at the default
# interval): one quiet window must not blank it, a spike must not linger for long.
READ_WINDOWS = 30


def operation(endpoint: str, op: str) -> str:
    """The operation a request counts under in the load summary (a bounded set of names)."""
    if endpoint == "/pks/lookup":
        return op if op in LOOKUP_OPS else "other"
    if endpoint == "/pks/add":
        return "add"
    if endpoint == "/pks/hashquery":
        return "hashquery"
    if endpoint == "/pks/health":
        return "health"
    if endpoint.startswith("/cluster/"):
        return "cluster"
    if endpoint == "/metrics":
        return "metrics"
    return "unmatched"


def quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The q-quantile of a histogram (`counts` per bucket, the last one +Inf), or None if empty.

    Linear inside the bucket holding the rank, from the bucket's lower bound (0 for the first)
    to its upper one, as Prometheus' histogram_quantile; a rank in +Inf gives the last bound.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    for i, count in enumerate(counts):
        if count and running + count >= rank:
            if i >= len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - running) / count
        running += count
    return bounds[-1]


def sample_quantile(q: float, samples: Iterable[float]) -> float | None:
    """The q-quantile of raw samples (nearest rank), or None without samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class LoopLagProbe:
    """How late the event loop runs a timer: `run()` is a task; `take()` empties the window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.late: list[float] = []

    async def run(self) -> None:
        while True:
            start = self.clock()
            await asyncio.sleep(LAG_PROBE_S)
            self.note(self.clock() - start - LAG_PROBE_S)

    def note(self, late: float) -> None:
        if len(self.late) < _MAX_LAG_PROBES:
            self.late.append(max(0.0, late))

    def take(self) -> tuple[float, float]:
        """Mean and max lag (s) since the last take."""
        late, self.late = self.late, []
        return (sum(late) / len(late), max(late)) if late else (0.0, 0.0)


class Figures:
    """Where the performance figures come from (each part is None on a node without it)."""

    def __init__(self, replication_lags: Callable[[], Sequence[float]] | None = None,
                 commit_seconds: Callable[[], Sequence[float]] | None = None,
                 sync_age: Callable[[], float | None] | None = None,
                 pending_pushes: Callable[[], int] | None = None,
                 reach: Callable[[], Mapping[str, float] | None] | None = None) -> None:
        self.replication_lags = replication_lags or (lambda: ())
        self.commit_seconds = commit_seconds or (lambda: ())
        self.sync_age = sync_age or (lambda: None)
        self.pending_pushes = pending_pushes or (lambda: 0)
        self.reach = reach or (lambda: None)


class LoadSampler:
    """Turns the node's counters into one LoadSummary per call of `sample()`."""

    def __init__(
        self,
        node_id: str,
        metrics: HttpMetrics,
        lag: LoopLagProbe,
        connections: Callable[[], int],
        figures: Figures | None = None,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self.lag = lag
        self.connections = connections
        self.figures = figures or Figures()
        self.wall, self.clock, self.cpu = wall, clock, cpu
        self.latest: LoadSummary | None = None
        self._last_at = clock()
        self._last_cpu = cpu()
        self._last_buckets = self._buckets_by_op()
        # Lookup latency bucket counts of the last READ_WINDOWS windows, one list per window.
        self._reads: deque[list[int]] = deque(maxlen=READ_WINDOWS)

    def _buckets_by_op(self) -> dict[str, list[int]]:
        """Cumulative latency bucket counts per operation (counts since start)."""
        by_op: dict[str, list[int]] = {}
        for (endpoint, op, _status), counts in self.metrics.requests.buckets.items():
            name = operation(endpoint, op)
            into = by_op.setdefault(name, [0] * len(counts))
            for i, count in enumerate(counts):
                into[i] += count
        return by_op

    def sample(self) -> LoadSummary:
        """The summary of the window since the previous call (kept as `latest`)."""
        now, cpu = self.clock(), self.cpu()
        window = max(now - self._last_at, 1e-6)
        buckets = self._buckets_by_op()
        ops: dict[str, OpLoad] = {}
        reads = [0] * (len(LATENCY_BUCKETS) + 1)
        for name, counts in sorted(buckets.items()):
            before = self._last_buckets.get(name, [0] * len(counts))
            delta = [c - b for c, b in zip(counts, before, strict=True)]
            done = sum(delta)
            ops[name] = OpLoad(done / window, quantile(0.5, LATENCY_BUCKETS, delta),
                               quantile(0.99, LATENCY_BUCKETS, delta))
            if name in READ_OPS:
                reads = [r + d for r, d in zip(reads, delta, strict=True)]
        self._reads.append(reads)
        recent = [sum(column) for column in zip(*self._reads, strict=True)]
        lag_mean, lag_max = self.lag.take()
        lags = list(self.figures.replication_lags())
        commits = list(self.figures.commit_seconds())
        reach = self.figures.reach()
        summary = LoadSummary(
            self.node_id, self.wall(), window, ops, max(0.0, cpu - self._last_cpu) / window,
            lag_mean, lag_max, self.connections(),
            sample_quantile(0.99, lags), len(lags), sample_quantile(0.99, commits), len(commits),
            self.figures.sync_age(), self.figures.pending_pushes(), None if reach is None else dict(reach),
            quantile(0.99, LATENCY_BUCKETS, recent), sum(recent),
        )
        self._last_at, self._last_cpu, self._last_buckets = now, cpu, buckets
        self.latest = summary
        return summary


def client_load(summary: LoadSummary, ops: Iterable[str] = CLIENT_OPS) -> OpLoad:
    """The requests/s of `ops` together, and the worst p50/p99 among them.

    The worst per-operation quantile bounds the quantile of all of them together from above
    (if no operation has more than 1% of its requests above x, neither has their union).
    """
    chosen = [summary.ops[op] for op in ops if op in summary.ops]
    rate = sum(o.rate for o in chosen)
    p50s = [o.p50 for o in chosen if o.p50 is not None]
    p99s = [o.p99 for o in chosen if o.p99 is not None]
    return OpLoad(rate, max(p50s) if p50s else None, max(p99s) if p99s else None)
