"""GET /cluster/load and GET /cluster/performance: every node's load, as this node has it.

    GET /cluster/load          per node: requests/s and p50/p99 per operation, CPU, event-loop
                               lag, open connections, headroom and the agent-check weight; each
                               with `age_s`, how long ago its window ended
    GET /cluster/performance   the design's figures measured live, per node, each against its
                               target: replicated-write latency, local read latency, sync lag,
                               consensus commit latency

Nothing here asks another node: the figures arrived with the load exchange of the replication
listener (meshkp/replication/load.py), at most `load_interval` plus one exchange old while the
peer is reachable. A peer's summary older than STALE_INTERVALS intervals is marked `stale`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from meshkp.http.agent_check import agent_percent, headroom
from meshkp.http.load import READ_WINDOWS, LoadSampler, client_load
from meshkp.http.routing import RoutingGate
from meshkp.membership.service import MembershipService
from meshkp.replication.load import LoadBoard
from meshkp.replication.load_wire import LoadSummary, OpLoad

# A peer's summary missed this many exchanges: it is shown, marked stale (the peer is slow,
# unreachable on its replication port, or gone).
STALE_INTERVALS = 3
# The design's targets (docs/architecture.md, "Figures"), in seconds.
REPLICATED_WRITE_P99_S = 0.100  # a write on every node of the mesh within 100 ms (p99)
LOCAL_READ_P99_S = 0.010  # a lookup served from the local LevelDB in under 10 ms (p99)
CONSENSUS_COMMIT_P99_S = 0.050  # a policy change committed in under 50 ms (p99)
# Sync lag: a round starts every sync interval with one random peer, so the last completed one
# is at most an interval (plus the round itself) old; twice the interval allows one slow round.
SYNC_LAG_INTERVALS = 2


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, sort_keys=True) + "\n", status=status,
                        content_type="application/json")


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def _op(load: OpLoad) -> dict[str, Any]:
    return {"rate": round(load.rate, 3), "p50_ms": _ms(load.p50), "p99_ms": _ms(load.p99)}


class LoadHandlers:
    """The load and performance routes of one node."""

    def __init__(self, node_id: str, sampler: LoadSampler, board: LoadBoard, gate: RoutingGate,
                 membership: MembershipService | None, interval_s: float, sync_interval_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.node_id = node_id
        self.sampler = sampler
        self.board = board
        self.gate = gate
        self.membership = membership
        self.interval_s = interval_s
        self.sync_interval_s = sync_interval_s
        self.clock, self.wall = clock, wall

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/load", self.load)
        app.router.add_get("/cluster/performance", self.performance)

    def _summaries(self) -> dict[str, tuple[LoadSummary | None, float | None]]:
        """node id -> (its latest summary, seconds since its window ended) for every member."""
        found: dict[str, tuple[LoadSummary | None, float | None]] = {}
        if self.membership is not None:
            for member in self.membership.members():
                if member.status.label != "left":
                    found[member.node_id] = (None, None)
        now = self.clock()
        for node, received in self.board.peers.items():
            if node in found or self.membership is None:
                found[node] = (received.summary, max(0.0, now - received.received))
        own = self.sampler.latest
        found[self.node_id] = (own, max(0.0, self.wall() - own.at) if own is not None else None)
        return found

    def _status(self, node: str) -> str:
        if self.membership is None:
            return "alive"
        for member in self.membership.members():
            if member.node_id == node:
                return member.status.label
        return "unknown"

    def _routing_weight(self, node: str) -> int:
        return self.gate.policy().routing_of(node).weight

    async def load(self, request: web.Request) -> web.Response:
        nodes: dict[str, Any] = {}
        now = self.clock()
        for node, (summary, age) in sorted(self._summaries().items()):
            entry: dict[str, Any] = {"status": self._status(node), "self": node == self.node_id,
                                     "age_s": None, "stale": True, "load": None,
                                     "rtt_ms": None, "last_contact_s": None}
            contact = self.board.contacts.get(node)
            if contact is not None:  # this node's own last exchange with it
                entry.update(rtt_ms=_ms(contact.rtt),
                             last_contact_s=round(max(0.0, now - contact.at), 3))
            nodes[node] = entry
            if summary is None:
                continue
            room = headroom(summary)
            entry.update(age_s=round(age or 0.0, 3),
                         stale=(age or 0.0) > STALE_INTERVALS * self.interval_s)
            entry["load"] = {
                "sampled_at": round(summary.at, 3),
                "window_s": round(summary.window_s, 3),
                "requests": {op: _op(load) for op, load in sorted(summary.ops.items())},
                "client": _op(client_load(summary)),
                "cpu": round(summary.cpu, 4),
                "loop_lag_ms": {"mean": _ms(summary.loop_lag_mean),
                                "max": _ms(summary.loop_lag_max)},
                "connections": summary.connections,
                "pending_pushes": summary.pending_pushes,
                "headroom": round(room, 4),
                "agent_percent": agent_percent(self._routing_weight(node), room),
                "reach": None if summary.reach is None else
                         {peer: _ms(rtt) for peer, rtt in sorted(summary.reach.items())},
            }
        return _json({"self": self.node_id, "interval_s": self.interval_s,
                      "stale_after_s": STALE_INTERVALS * self.interval_s, "nodes": nodes})

    async def performance(self, request: web.Request) -> web.Response:
        summaries = {node: s for node, (s, _age) in self._summaries().items() if s is not None}
        figures = {
            "replicated_write_latency": _figure(
                "p99 of the time from a write's first acceptance to its merge on this node, over "
                "the last pushes it received", REPLICATED_WRITE_P99_S,
                {n: (s.replication_p99, s.replication_samples) for n, s in summaries.items()}),
            "local_read_latency": _figure(
                f"p99 of the HKP lookups answered in the last {READ_WINDOWS} load windows",
                LOCAL_READ_P99_S, {n: (s.read_p99, s.read_samples) for n, s in summaries.items()}),
            "sync_lag": _figure(
                "seconds since the node's last completed anti-entropy round",
                SYNC_LAG_INTERVALS * self.sync_interval_s,
                {n: (s.sync_age, None) for n, s in summaries.items()}),
            "consensus_commit_latency": _figure(
                "p99 of the policy changes proposed on the node, until applied there",
                CONSENSUS_COMMIT_P99_S,
                {n: (s.commit_p99, s.commit_samples) for n, s in summaries.items()}),
        }
        verdicts = [f["meets"] for f in figures.values() if f["meets"] is not None]
        return _json({"self": self.node_id, "figures": figures,
                      "meets": all(verdicts) if verdicts else None})


def _figure(what: str, target_s: float,
            values: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """One figure: per node its value, sample count and verdict; the worst over the nodes."""
    nodes: dict[str, Any] = {}
    measured: list[float] = []
    for node, (value, samples) in sorted(values.items()):
        entry: dict[str, Any] = {"value_ms": _ms(value),
                                 "meets": value < target_s if value is not None else None}
        if samples is not None:
            entry["samples"] = int(samples)
        nodes[node] = entry
        if value is not None:
            measured.append(value)
    worst = max(measured) if measured else None
    return {"what": what, "target_ms": _ms(target_s), "worst_ms": _ms(worst),
            "meets": worst < target_s if worst is not None else None, "nodes": nodes}
