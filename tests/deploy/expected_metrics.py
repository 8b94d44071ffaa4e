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
    # Control plane (Raft), no labels: 1 on the node that is leader now, else 0.
    "meshkp_control_leader": "control plane",
    # Control plane: the current term, and the commit index.
    "meshkp_control_term": "control plane",
    "meshkp_control_commit_index": "control plane",
    # Control plane: seconds left of the leader's lease (0 on followers and without a lease).
    "meshkp_control_lease_remaining_seconds": "control plane",
    # Conflicts waiting for an operator (GET /cluster/conflicts).
    "meshkp_conflicts_pending": "conflicts metric (not registered yet)",
    # Bytes of the LevelDB directory on disk.
    "meshkp_store_bytes": "store metric (not registered yet)",
}
