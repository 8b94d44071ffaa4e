"""Metric names the alerts and the dashboard of deploy/ read that a meshkp node does not export
(yet), each with where it comes from. Every other name they use must be on a node's /metrics.

Prometheus and node_exporter provide theirs. The meshkp_* ones below are specified here for
the parts that will export them (the control plane, membership, conflicts, the store): the
alerts fire and the panels fill once those parts register them under exactly these names and
label sets. When a part exports one, delete its line: the test then checks it for real.
"""

from __future__ import annotations

FROM_ELSEWHERE: dict[str, str] = {
    # Prometheus: 1 when the last scrape of a target succeeded.
    "up": "prometheus",
    # node_exporter's filesystem collector, labels device, fstype, mountpoint.
    "node_filesystem_avail_bytes": "node_exporter",
    "node_filesystem_size_bytes": "node_exporter",
}
