"""The load summary a node sends its peers (LoadReport, type 49), and its bounds.

Decoded like every replication message (meshkp/replication/messages.py): shape and every
bound checked, WireError on anything else. How the summaries travel: meshkp/replication/load.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from meshkp.errors import WireError
from meshkp.net.message import Message

# --- Bounds, each with what it protects against. ----------------------------------------------
# Operations in one summary: a peer cannot grow our board (and /cluster/load) without bound.
# meshkp reports about ten (the HKP ops, add, cluster, metrics, other).
MAX_OPS = 16
_OP_NAME = re.compile(r"^[a-z_]{1,24}$")
# Node ids are at most 64 characters (meshkp/net/identity.py).
MAX_NODE_CHARS = 64
# Peers a summary says it reached (with their round-trip time): the picture of who sees whom.
# Past this many a node reports the nearest ones; 256 x ~26 bytes keeps a summary in one page.
MAX_REACH = 256
# Any figure: finite and below this (seconds, rates per second, a CPU fraction, a count).
_MAX_FIGURE = float(2**40)  # the bound of every Unix time on the wire (messages.py)
# The type code of LoadReport among replication's 40-49.
LOAD_REPORT_TYPE = 49


@dataclass(frozen=True, slots=True)
class OpLoad:
    """One operation over the sampling window: requests per second and latency quantiles (s).

    The quantiles are None when no request of the operation was answered in the window."""

    rate: float
    p50: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """A node's load over the window of `window_s` seconds that ended at Unix time `at`.

    `cpu`: CPU seconds of the process per second (1.0 = one core busy). `loop_lag_mean` and
    `loop_lag_max`: how late the event loop ran a timer (s). `replication_p99`: p99 over the
    last pushes received of the time from a write's first acceptance to its merge here (s);
    `commit_p99`: p99 of the last policy changes proposed here, until applied (s);
    `sync_age`: seconds since this node's last completed anti-entropy round (None: none yet).
    `reach`: the peers that answered this node's last load exchange, with the round trip (s);
    None before its first exchange (unknown: not "reached nobody", which would read as a
    partition).
    `read_p99`: p99 of the HKP lookups of the last READ_WINDOWS windows (s), over
    `read_samples` lookups.
    """

    node: str
    at: float
    window_s: float
    ops: Mapping[str, OpLoad] = field(default_factory=dict)
    cpu: float = 0.0
    loop_lag_mean: float = 0.0
    loop_lag_max: float = 0.0
    connections: int = 0
    replication_p99: float | None = None
    replication_samples: int = 0
    commit_p99: float | None = None
    commit_samples: int = 0
    sync_age: float | None = None
    pending_pushes: int = 0
    reach: Mapping[str, float] | None = None
    read_p99: float | None = None
    read_samples: int = 0

    def to_map(self) -> dict[str, Any]:
        return {
            "node": self.node, "at": self.at, "win": self.window_s,
            "ops": {op: [o.rate, o.p50, o.p99] for op, o in self.ops.items()},
            "cpu": self.cpu, "lag": [self.loop_lag_mean, self.loop_lag_max],
            "conn": self.connections,
            "repl": [self.replication_p99, self.replication_samples],
            "commit": [self.commit_p99, self.commit_samples],
            "sync": self.sync_age, "push": self.pending_pushes,
            "read": [self.read_p99, self.read_samples],
            **({} if self.reach is None else {"reach": dict(self.reach)}),
        }

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> LoadSummary:
        node = body.get("node")
        if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_CHARS:
            raise WireError(f"load summary: 'node' must be 1-{MAX_NODE_CHARS} characters")
        ops = body.get("ops")
        if not isinstance(ops, dict) or len(ops) > MAX_OPS:
            raise WireError(f"load summary: 'ops' must be a map of at most {MAX_OPS} operations")
        parsed: dict[str, OpLoad] = {}
        for op, figures in ops.items():
            if not isinstance(op, str) or not _OP_NAME.match(op):
                raise WireError("load summary: operation names are 1-24 of a-z and _")
            rate, p50, p99 = _triple(figures, f"ops.{op}")
            parsed[op] = OpLoad(_need(rate, f"ops.{op}"), p50, p99)
        lag_mean, lag_max = _pair(body.get("lag"), "lag")
        repl, repl_n = _pair(body.get("repl"), "repl")
        commit, commit_n = _pair(body.get("commit"), "commit")
        reach = body.get("reach", {})  # absent: no exchange yet, or a node that does not report it
        if not isinstance(reach, dict) or len(reach) > MAX_REACH:
            raise WireError(f"load summary: 'reach' must be a map of at most {MAX_REACH} peers")
        read, read_n = _pair(body.get("read", [None, 0]), "read")  # absent: an older node
        reached: dict[str, float] = {}
        for peer, rtt in reach.items():
            if not isinstance(peer, str) or not 0 < len(peer) <= MAX_NODE_CHARS:
                raise WireError(f"load summary: 'reach' peers are 1-{MAX_NODE_CHARS} characters")
            reached[peer] = _need(_figure(rtt, "reach"), "reach")
        return cls(
            node, _need(_figure(body.get("at"), "at"), "at"),
            _need(_figure(body.get("win"), "win"), "win"), parsed,
            _need(_figure(body.get("cpu"), "cpu"), "cpu"),
            _need(lag_mean, "lag"), _need(lag_max, "lag"),
            int(_need(_figure(body.get("conn"), "conn"), "conn")),
            repl, int(_need(repl_n, "repl")), commit, int(_need(commit_n, "commit")),
            _figure(body.get("sync"), "sync"),
            int(_need(_figure(body.get("push"), "push"), "push")),
            reached if "reach" in body else None,
            read, int(_need(read_n, "read")),
        )


def _figure(value: object, name: str) -> float | None:
    """A bounded, finite, non-negative number, or None."""
    if value is None:
        return None
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not math.isfinite(value) or not 0 <= value < _MAX_FIGURE):
        raise WireError(f"load summary: {name!r} must be a number in [0, {_MAX_FIGURE:g})")
    return float(value)


def _need(value: float | None, name: str) -> float:
    if value is None:
        raise WireError(f"load summary: {name!r} must be a number, not nil")
    return value


def _pair(value: object, name: str) -> tuple[float | None, float | None]:
    if not isinstance(value, list) or len(value) != 2:
        raise WireError(f"load summary: {name!r} must be a pair")
    return _figure(value[0], name), _figure(value[1], name)


def _triple(value: object, name: str) -> tuple[float | None, float | None, float | None]:
    if not isinstance(value, list) or len(value) != 3:
        raise WireError(f"load summary: {name!r} must be [rate, p50, p99]")
    return _figure(value[0], name), _figure(value[1], name), _figure(value[2], name)


@dataclass(frozen=True, slots=True)
class LoadReport(Message):
    """A node's latest load summary (None: it has not sampled one yet); the reply is the same."""

    TYPE: ClassVar[int] = LOAD_REPORT_TYPE
    summary: LoadSummary | None

    def to_map(self) -> dict[str, Any]:
        return {"s": self.summary.to_map() if self.summary is not None else None}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> LoadReport:
        raw = body.get("s")
        if raw is None:
            return cls(None)
        if not isinstance(raw, dict):
            raise WireError("load report: 's' must be a map or nil")
        return cls(LoadSummary.from_map(raw))


