"""Prometheus gauges of this node's load and routing, read from the latest load sample.

    meshkp_loop_lag_seconds{stat="mean"|"max"}  event-loop lag over the last load window
    meshkp_http_connections                     connections open on the HKP listener
    meshkp_load_headroom                        1 - the busier of CPU and loop (agent_check.py)
    meshkp_agent_weight_percent                 the weight the agent check answers (0-256)
    meshkp_routing_draining, _read_only         this node's routing policy (1: on)
    meshkp_load_peers_reporting                 peers whose load summary is fresh here
    meshkp_load_reports_refused_total           load reports about another node than the sender
    meshkp_control_commit_p99_seconds           p99 of the last policy changes proposed here

The process's own CPU, memory and file descriptors: prometheus-client's process_* metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from meshkp.http.agent_check import agent_percent, headroom
from meshkp.http.load import LoadSampler
from meshkp.http.load_routes import STALE_INTERVALS
from meshkp.http.routing import RoutingGate
from meshkp.replication.load import LoadBoard


class LoadMetrics(Collector):
    def __init__(self, sampler: LoadSampler, board: LoadBoard, gate: RoutingGate,
                 interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.sampler, self.board, self.gate = sampler, board, gate
        self.interval_s = interval_s
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        latest = self.sampler.latest
        lag = GaugeMetricFamily("meshkp_loop_lag_seconds",
                                "Event-loop lag over the last load window", labels=["stat"])
        if latest is not None:
            lag.add_metric(["mean"], latest.loop_lag_mean)
            lag.add_metric(["max"], latest.loop_lag_max)
        yield lag
        commit = GaugeMetricFamily("meshkp_control_commit_p99_seconds",
                                   "p99 of the last policy changes proposed here, until applied")
        if latest is not None and latest.commit_p99 is not None:
            commit.add_metric([], latest.commit_p99)
        yield commit
        connections = GaugeMetricFamily("meshkp_http_connections",
                                        "Connections open on the HKP listener")
        connections.add_metric([], self.sampler.connections())
        yield connections
        room = headroom(latest)
        yield _gauge("meshkp_load_headroom", "1 - the busier of CPU (one core) and event loop",
                     room)
        own = self.gate.own
        yield _gauge("meshkp_agent_weight_percent",
                     "The weight the agent check answers, in % of the configured one",
                     agent_percent(own.weight, room))
        yield _gauge("meshkp_routing_draining", "1 while the routing policy drains this node",
                     int(own.drain))
        yield _gauge("meshkp_routing_read_only", "1 while the routing policy refuses uploads here",
                     int(own.read_only))
        now, fresh = self.clock(), STALE_INTERVALS * self.interval_s
        yield _gauge("meshkp_load_peers_reporting", "Peers whose load summary is fresh here",
                     sum(1 for r in self.board.peers.values() if now - r.received <= fresh))
        refused = CounterMetricFamily("meshkp_load_reports_refused",
                                      "Load reports about another node than their sender")
        refused.add_metric([], self.board.refused)
        yield refused


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family
