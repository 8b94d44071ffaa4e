"""Prometheus metrics of replication, registered on the node's registry (served at /metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from meshkp.replication.sync_metrics import SyncStatusMetrics

# Push lag from the first node's acceptance to the merge here: 1 ms (loopback) to 1 minute
# (a peer that was partitioned and catches up through forwarding).
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


class ReplicationMetrics:
    """Collectors reading a Replicator's counters at scrape time, plus the lag histogram."""

    def __init__(self, replicator: Any, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "meshkp_replication_lag_seconds",
            "Time from a change's acceptance on its first node to its merge on this node (push)",
            buckets=_LAG_BUCKETS, registry=registry,
        )
        replicator.lag_observer = self.lag.observe
        registry.register(_Collector(replicator))
        registry.register(SyncStatusMetrics(replicator))


class _Collector(Collector):
    def __init__(self, replicator: Any) -> None:
        self.replicator = replicator

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        rep = self.replicator
        c = rep.counters
        pending = GaugeMetricFamily("meshkp_replication_pending_pushes",
                                    "Keys queued for push, over all peers")
        pending.add_metric([], rep.pusher.pending())
        yield pending
        oldest = GaugeMetricFamily("meshkp_replication_push_oldest_seconds",
                                   "Age of the oldest change still queued for push (lag bound)")
        oldest.add_metric([], rep.pusher.oldest_pending_age())
        yield oldest
        copying = GaugeMetricFamily("meshkp_replication_bootstrapping",
                                    "1 while a snapshot bootstrap copies a peer's store here")
        copying.add_metric([], int(rep.bootstrapping()))
        yield copying
        for name, value, doc in (
            ("meshkp_replication_bytes_out", c.bytes_out, "Replication bytes sent (push and sync)"),
            ("meshkp_replication_bytes_in", c.bytes_in, "Replication bytes received in replies"),
            ("meshkp_replication_push_batches", c.pushes_sent, "Push batches acknowledged"),
            ("meshkp_replication_push_failures", c.push_failures, "Push batches that failed"),
            ("meshkp_replication_push_dropped", c.push_dropped, "Queued keys dropped by the bound"),
            ("meshkp_replication_records_received", c.records_received, "Records received"),
            ("meshkp_replication_records_applied", c.records_applied, "Records that changed state"),
            ("meshkp_replication_batches_rejected", c.batches_rejected,
             "Batches refused whole (invalid records or messages); nothing of them stored"),
            ("meshkp_replication_records_rejected", c.records_rejected,
             "Records and snapshot rows refused by validation; never stored"),
            ("meshkp_replication_sync_rounds", c.sync_rounds, "Anti-entropy rounds started"),
            ("meshkp_replication_sync_errors", c.sync_errors, "Anti-entropy rounds that failed"),
            ("meshkp_replication_loop_failures", rep.loop_failures,
             "Anti-entropy loop iterations that raised (logged; the loop goes on)"),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        yield from _compression(rep)
        last = GaugeMetricFamily("meshkp_replication_last_sync_timestamp",
                                 "Unix time of the last anti-entropy round per peer", labels=["peer"])
        for node_id, status in sorted(rep.statuses.items()):
            if status.last_sync_time is not None:
                last.add_metric([node_id], status.last_sync_time)
        yield last


def _compression(rep: Any) -> Iterator[CounterMetricFamily]:
    """What zlib did to replication frames ([cluster.replication] compression, net/compression.py)."""
    stats = rep.net_stats.compression if rep.net_stats is not None else None
    if stats is None:
        return
    seen = stats.snapshot()
    for name, key, doc in (
        ("meshkp_replication_compressed_frames", "frames_compressed",
         "Replication frames sent zlib-compressed"),
        ("meshkp_replication_compression_skipped_frames", "frames_not_smaller",
         "Frames zlib did not make smaller, sent as they were"),
        ("meshkp_replication_compression_input_bytes", "bytes_before",
         "Bytes of the compressed frames before zlib"),
        ("meshkp_replication_compression_output_bytes", "bytes_after",
         "Bytes of the compressed frames after zlib (output/input is the ratio)"),
        ("meshkp_replication_inflated_frames", "frames_inflated",
         "Compressed frames received and inflated"),
    ):
        family = CounterMetricFamily(name, doc)
        family.add_metric([], seen[key])
        yield family
