"""Prometheus metrics of the HTTP layer and the key store, served at GET /metrics.

Each app gets its own CollectorRegistry: several nodes in one process (tests, simulations)
must not share counters, and prometheus-client's global registry refuses duplicates.
Other layers (replication, membership) register their collectors on `HttpMetrics.registry`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Buckets from 100 µs (a cached op=get) to 10 s (a large keyring upload).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Observations queued before they are folded into the counts (~25 KB of tuples at most).
FOLD_EVERY = 256
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class HttpMetrics:
    """The collectors of one node's HTTP app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds...
        ProcessCollector(registry=self.registry)
        self.requests = _RequestCollector()
        self.registry.register(self.requests)
        self.bugs = Counter(
            "meshkp_http_unexpected_errors", "Requests that raised an unexpected exception (bugs)",
            registry=self.registry,
        )
        self.uploads = _UploadCollector()
        self.registry.register(self.uploads)
        self.keys = Gauge("meshkp_keys", "Live keys in the store", registry=self.registry)
        self.served_cache_entries = Gauge(
            "meshkp_served_cache_entries", "Keys held in the op=get cache", registry=self.registry
        )
        self.served_cache_bytes = Gauge(
            "meshkp_served_cache_bytes", "Bytes held in the op=get cache", registry=self.registry
        )
        self.served_cache_hits = Gauge(
            "meshkp_served_cache_hits", "op=get cache hits since start", registry=self.registry
        )
        self.served_cache_misses = Gauge(
            "meshkp_served_cache_misses", "op=get cache misses since start", registry=self.registry
        )
        self.term_cache_entries = Gauge(
            "meshkp_term_cache_entries", "Search terms held in the term cache",
            registry=self.registry)
        self.term_cache_hits = Gauge(
            "meshkp_term_cache_hits", "Term cache hits since start (searches and digests)",
            registry=self.registry)
        self.term_cache_misses = Gauge(
            "meshkp_term_cache_misses", "Term cache misses since start", registry=self.registry)

    def observe(self, endpoint: str, op: str, status: int, seconds: float) -> None:
        """Count one answered request (called on the event loop for every request)."""
        self.requests.observe(endpoint, op, status, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# Labels exported at 0 from the start, for rate() and alerts.
UPLOAD_OUTCOMES = ("added", "updated", "unchanged", "rejected")
REJECTION_REASONS = ("blacklisted", "deleted", "invalid")


class _UploadCollector(Collector):
    """meshkp_upload_keys_total{outcome} and meshkp_upload_rejected_total{reason}, kept in
    plain dicts on the event loop (as _RequestCollector, and for the same reason: a labelled
    prometheus-client Counter took ~5 µs of every upload, issue 14)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = dict.fromkeys(UPLOAD_OUTCOMES, 0)
        self.rejections: dict[str, int] = dict.fromkeys(REJECTION_REASONS, 0)

    def count(self, outcome: str, rejection: str | None = None) -> None:
        """One key of an upload: its outcome and, if rejected, the reason."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if rejection is not None:
            self.rejections[rejection] = self.rejections.get(rejection, 0) + 1

    def collect(self) -> Iterator[Metric]:
        keys = CounterMetricFamily("meshkp_upload_keys", "Keys in POST /pks/add by outcome",
                                   labels=["outcome"])
        for outcome, count in self.outcomes.items():
            keys.add_metric([outcome], count)
        yield keys
        rejected = CounterMetricFamily(
            "meshkp_upload_rejected", "Keys refused in POST /pks/add by reason: blacklisted (the "
            "cluster policy), deleted (an operator deleted it), invalid (its content)",
            labels=["reason"])
        for reason, count in self.rejections.items():
            rejected.add_metric([reason], count)
        yield rejected


class _RequestCollector(Collector):
    """Request counts and latencies kept in plain dicts, exported at scrape time.

    prometheus-client's Counter and Histogram take a lock and walk label maps on every
    observation; at tens of thousands of requests per second that is a visible share of an
    op=get. Everything here is touched only on the event loop thread (requests and the
    /metrics handler), so no lock is needed.
    """

    def __init__(self) -> None:
        # (endpoint, op, status) -> [per-bucket counts..., +Inf count, sum of seconds] (the count
        # is the buckets' total, summed at scrape time). The histogram is exported by status
        # class ("2xx", "4xx"...) to keep the series few.
        self.rows: dict[tuple[str, str, int], list[float]] = {}
        # Observations not yet folded into `rows`: a request only appends its tuple, and they
        # are folded FOLD_EVERY at a time (or when read), in one warm loop. Folding each one
        # inline cost ~2 µs of an op=get that takes ~30 µs (cold caches between requests).
        self._pending: list[tuple[str, str, int, float]] = []

    def observe(self, endpoint: str, op: str, status: int, seconds: float) -> None:
        pending = self._pending
        pending.append((endpoint, op, status, seconds))
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Add the pending observations to `rows` (before every read of them)."""
        pending, self._pending = self._pending, []
        rows, width, bounds = self.rows, len(LATENCY_BUCKETS) + 2, LATENCY_BUCKETS
        for endpoint, op, status, seconds in pending:
            key = (endpoint, op, status)
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0.0] * width
            row[bisect.bisect_left(bounds, seconds)] += 1
            row[-1] += seconds

    @property
    def buckets(self) -> dict[tuple[str, str, int], list[int]]:
        """Latency bucket counts (the last one +Inf) by (endpoint, op, status)."""
        self.fold()
        return {key: [int(count) for count in row[:-1]] for key, row in self.rows.items()}

    @property
    def counts(self) -> dict[tuple[str, str, int], int]:
        """Requests answered by (endpoint, op, status)."""
        return {key: sum(counts) for key, counts in self.buckets.items()}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "meshkp_http_requests", "HTTP requests by endpoint, HKP op and status",
            labels=["endpoint", "op", "status"],
        )
        for (endpoint, op, status), count in sorted(self.counts.items()):
            requests.add_metric([endpoint, op, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "meshkp_http_request_seconds", "Time to answer an HTTP request, by status class",
            labels=["endpoint", "op", "code"],
        )
        by_class: dict[tuple[str, str, str], list[int]] = {}
        sums: dict[tuple[str, str, str], float] = {}
        self.fold()
        for (endpoint, op, status), row in self.rows.items():
            key = (endpoint, op, _STATUS_CLASS.get(status // 100, "other"))
            into = by_class.setdefault(key, [0] * (len(row) - 1))
            for i, observed in enumerate(row[:-1]):
                into[i] += int(observed)
            sums[key] = sums.get(key, 0.0) + row[-1]
        for (endpoint, op, code), counts in sorted(by_class.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([endpoint, op, code], cumulative, sums[(endpoint, op, code)])
        yield latency
