"""Prometheus metrics of the HTTP layer and the key store, served at GET /metrics.

Each app gets its own CollectorRegistry: several nodes in one process (tests, simulations)
must not share counters, and prometheus-client's global registry refuses duplicates.
Other layers (replication, membership) register their collectors on `HttpMetrics.registry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Buckets from 100 µs (a cached op=get) to 10 s (a large keyring upload).
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class HttpMetrics:
    """The collectors of one node's HTTP app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "meshkp_http_requests", "HTTP requests by endpoint, HKP op and status",
            ["endpoint", "op", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "meshkp_http_request_seconds", "Time to answer an HTTP request",
            ["endpoint", "op"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.bugs = Counter(
            "meshkp_http_unexpected_errors", "Requests that raised an unexpected exception (bugs)",
            registry=self.registry,
        )
        self.uploads = Counter(
            "meshkp_upload_keys", "Keys in POST /pks/add by outcome",
            ["outcome"], registry=self.registry,
        )
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
        # Pre-resolved children for the hot endpoints: labels() costs a lock and a dict walk.
        self._children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[tuple[str, str], Histogram] = {}

    def observe(self, endpoint: str, op: str, status: int, seconds: float) -> None:
        key = (endpoint, op, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(endpoint, op, str(status))
        child.inc()
        lat_key = (endpoint, op)
        lat = self._latency_children.get(lat_key)
        if lat is None:
            lat = self._latency_children[lat_key] = self.latency.labels(endpoint, op)
        lat.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
