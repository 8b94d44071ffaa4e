"""Prometheus metrics of the control plane, read from the ControlPlane at each scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from meshkp.control.driver.plane import ControlPlane


class ControlMetrics:
    """Registers the control plane's gauges and counters on the node's registry, and its
    transport's frame counters as `meshkp_control_frames_*` / `_bytes_*` (sent, received, and
    dropped by reason: `queue_full` and `send_error` are the persistent links' drops)."""

    def __init__(self, plane: ControlPlane, registry: CollectorRegistry) -> None:
        registry.register(_Collector(plane))
        if plane.net_stats is not None:
            registry.register(plane.net_stats.collector(prefix="meshkp_control"))


class _Collector:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        plane = self.plane
        core = plane.core
        now = plane.clock.now()
        gauges = (
            ("meshkp_control_term", "Raft term this node is in", core.term),
            ("meshkp_control_commit_index", "highest log index known committed", core.commit),
            ("meshkp_control_applied_index", "highest log index applied to the policy", core.applied),
            ("meshkp_control_lease_remaining_seconds", "leader lease left (0 unless leader)",
             core.lease_remaining(now)),
            ("meshkp_control_leader", "1 on the node that is leader now, else 0",
             int(plane.is_leader)),
            ("meshkp_control_policy_version", "policy version applied here", plane.state.version),
            ("meshkp_control_forked", "1 while this node's committed log conflicts with its leader's "
             "(mend it with meshkp recover --rejoin)", int(core.forked_at is not None)),
            ("meshkp_control_superseded", "1 while a newer generation (a forced recovery) exists "
             "than this node's configuration", int(core.superseded)),
        )
        for name, doc, value in gauges:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], float(value))
            yield family
        counters = (
            ("meshkp_control_leader_changes", "leaders this node has seen (newly known leader ids)",
             plane.leader_changes),
            ("meshkp_control_proposals_committed", "changes proposed here and applied",
             plane.proposals_committed),
            ("meshkp_control_proposals_failed", "changes proposed here that failed (invalid, 503)",
             plane.proposals_failed),
            ("meshkp_control_snapshot_installs", "snapshots received from a leader and installed",
             plane.driver.snapshots_installed),
            ("meshkp_control_driver_errors", "Ready-loop iterations that raised (logged)",
             plane.driver.errors),
            ("meshkp_control_generation_refused", "messages refused from members of an older "
             "generation or another cluster (logged)", core.generation_refused),
        )
        for name, doc, value in counters:
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], float(value))
            yield counter
