"""Prometheus counters of the store's writer thread (group commit), read at each scrape.

Jobs per synced commit is the number of writes that shared one fsync: ~1 for uploads one at a
time, more when clients upload concurrently (meshkp/store/executor.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from meshkp.store.executor import WriterStats


class WriterMetrics:
    """Registers the writer's counters on the node's registry."""

    def __init__(self, stats: WriterStats, registry: CollectorRegistry) -> None:
        registry.register(_Collector(stats))


class _Collector:
    def __init__(self, stats: WriterStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.stats
        counters = (
            ("meshkp_store_write_jobs", "writes and read-modify-write jobs the writer ran",
             stats.jobs),
            ("meshkp_store_groups", "groups of jobs the writer committed together", stats.groups),
            ("meshkp_store_commits", "store writes (one per group, more when a range read "
             "inside a group flushed it)", stats.commits),
            ("meshkp_store_synced_commits", "store writes made durable: one fsync each",
             stats.synced_commits),
            ("meshkp_store_records_written", "record writes committed", stats.writes_committed),
            ("meshkp_store_window_waits", "groups whose writer waited commit_window_s for "
             "late joiners (only while writes are concurrent)", stats.window_waits),
        )
        for name, doc, value in counters:
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], float(value))
            yield counter
        largest = GaugeMetricFamily("meshkp_store_largest_group", "most jobs in one group so far")
        largest.add_metric([], float(stats.largest_group))
        yield largest
