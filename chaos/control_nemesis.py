"""Faults aimed at the control plane's leader, found at start with GET /cluster/leader.

- `KillLeader`: kill -9 of the leader during the policy stream; restarted at stop.
- `IsolateLeader`: the leader and one other node cut off from the other three (a minority that
  holds the old leader); `minority` is that side, for the checker's "a minority never commits".
- `PauseLeader`: SIGSTOP of the leader for far longer than its lease, then SIGCONT: it must
  step down, and nothing it held may commit twice or differently.
- `SkewLeader`: the leader restarted under libfaketime with its wall clock `offset` away
  (its monotonic clock is what the lease uses; the skew must not break agreement).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from chaos.cluster import ChaosCluster, poll
from chaos.control_checker import leader_of
from chaos.history import History
from chaos.nemesis import Nemesis, Partition


def _leader(cluster: ChaosCluster) -> int:
    found: list[int] = []
    poll(lambda: bool(found.append(leader) if (leader := leader_of(cluster)) is not None else False), 30)
    if not found:
        raise RuntimeError("no leader with a lease within 30 s: the control plane never settled")
    return found[0]


@dataclass
class KillLeader(Nemesis):
    name: str = "kill-leader"
    victim: int | None = None

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        self.victim = _leader(cluster)
        cluster.kill(self.victim)
        history.event(self.name, "start", detail=f"node={self.victim}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        cluster.restart_all()
        super().stop(cluster, history)


@dataclass
class IsolateLeader(Partition):
    name: str = "isolate-leader"
    minority: list[int] = field(default_factory=list)

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        leader = _leader(cluster)
        other = rng.choice([i for i in range(cluster.n) if i != leader])
        self.minority = [leader, other]
        self.sides = [self.minority, [i for i in range(cluster.n) if i not in self.minority]]
        super().start(cluster, history, rng)


@dataclass
class PauseLeader(Nemesis):
    name: str = "pause-leader"
    victim: int | None = None

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        self.victim = _leader(cluster)
        cluster.pause(self.victim)
        history.event(self.name, "start", detail=f"node={self.victim}")

    def targets(self, cluster: ChaosCluster, w: int) -> list[int]:
        return [i for i in range(cluster.n) if i != self.victim]

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        if self.victim is not None:
            cluster.resume(self.victim)
        super().stop(cluster, history)


def libfaketime() -> Path | None:
    """The multithreaded libfaketime of the `faketime` package (Debian path), or None."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    return found[0] if found else None


def faketime_available() -> bool:
    return libfaketime() is not None


@dataclass
class SkewLeader(Nemesis):
    """Restart the leader under libfaketime (apt package faketime), `offset` from real time."""

    name: str = "skew-leader"
    offset: str = "+300s"
    victim: int | None = None

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        self.victim = _leader(cluster)
        cluster.stop_node(self.victim)
        # LD_PRELOAD through env(1), which execs: the node's pid stays the python process (the
        # `faketime` wrapper forks, so signals and the data dir's lock would miss the node).
        cluster.prefix[self.victim] = ["env", f"LD_PRELOAD={libfaketime()}", f"FAKETIME={self.offset}"]
        cluster.start_node(self.victim)
        history.event(self.name, "start", detail=f"node={self.victim} offset={self.offset}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        if self.victim is not None:
            cluster.prefix.pop(self.victim, None)
            cluster.stop_node(self.victim)
            cluster.start_node(self.victim)
        super().stop(cluster, history)
