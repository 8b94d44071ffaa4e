"""Prometheus gauge of the anti-entropy rounds' outcome per peer, read at scrape time:

    meshkp_replication_peer_in_sync{peer}   1 if the last round with the peer found equal Merkle
                                            roots, 0 if it had to repair a difference or failed

A pair stuck at 0 for many sync intervals is a divergence anti-entropy does not fix (the
MeshkpMerkleRootsDisagree alert of deploy/prometheus). Peers never synced with are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class SyncStatusMetrics(Collector):
    """Reads a Replicator's per-peer statuses (PeerSyncStatus.last_result)."""

    def __init__(self, replicator: Any) -> None:
        self.replicator = replicator

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_sync = GaugeMetricFamily(
            "meshkp_replication_peer_in_sync",
            "1 if the last anti-entropy round with the peer found equal Merkle roots, else 0",
            labels=["peer"])
        for node_id, status in sorted(self.replicator.statuses.items()):
            if status.last_result != "never":
                in_sync.add_metric([node_id], 1 if status.last_result.startswith("in_sync") else 0)
        yield in_sync
