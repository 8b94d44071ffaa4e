"""Faults aimed at the control plane's leader, found at start with GET /cluster/leader.

- `KillLeader`: kill -9 of the leader during the policy stream; restarted at stop.
- `IsolateLeader`: the leader and one other node cut off from the other three (a minority that
  holds the old leader); `minority` is that side, for the checker's "a minority never commits".
- `PauseLeader`: SIGSTOP of the leader for far longer than its lease, then SIGCONT: it must
  step down, and nothing it held may commit twice or differently.
- `SkewLeader`: the leader restarted under libfaketime with its wall clock `offset` away
  (its monotonic clock is what the lease uses; the skew must not break agreement).
- `ReplaceVoter`: a voter replaced as an operator would (docs/control-plane.md "Replacing a
  voter by hand"), during the streams: it is stopped, removed for good through the log
  (`DELETE /cluster/members/ID`), and a new node with an empty data dir and a new id starts in
  its slot; the autopilot must add it as a learner and promote it to voter within the hold.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.cluster import ChaosCluster
from chaos.control_checker import leader_of
from chaos.history import History
from chaos.nemesis import Kill, Nemesis, Partition, Pause


def _leader(cluster: ChaosCluster) -> int:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        leader = leader_of(cluster)
        if leader is not None:
            return leader
        time.sleep(0.25)
    raise RuntimeError("no leader with a lease within 30 s: the control plane never settled")


@dataclass
class KillLeader(Kill):
    name: str = "kill-leader"

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        self.victims = [_leader(cluster)]  # each start finds the leader of the moment
        super().start(cluster, history, rng)


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
class PauseLeader(Pause):
    name: str = "pause-leader"

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        self.victim = _leader(cluster)
        super().start(cluster, history, rng)


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


MAX_VOTERS = 5  # the control plane's default max_voters (docs/control-plane.md)
REMOVE_TIMEOUT_S = 60.0
PROMOTE_TIMEOUT_S = 60.0


def voters(cluster: ChaosCluster) -> list[str]:
    """The voters in the leader's configuration ([] if no leader answers)."""
    leader = leader_of(cluster)
    body = None if leader is None else cluster.get_json(leader, "/cluster/consensus")
    return [str(v["id"]) for v in (body or {}).get("voters", [])]


def remove_member(cluster: ChaosCluster, member: str, timeout_s: float = REMOVE_TIMEOUT_S) -> int:
    """DELETE /cluster/members/MEMBER on running nodes in turn until one answers 200 (the
    removal committed); the status of that answer. RuntimeError when none did in time."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for i in cluster.running():
            node = cluster.nodes[i]
            if node is None:
                continue
            try:
                reply = node.request("DELETE", f"/cluster/members/{member}", timeout=8.0,
                                     headers={"Authorization": f"Bearer {cluster.token(i)}"})
            except OSError as exc:
                last = repr(exc)
                continue
            if reply.status == 200:
                return reply.status
            last = f"{reply.status} {reply.text[:200]}"
        time.sleep(0.5)
    raise RuntimeError(f"the removal of {member} did not commit within {timeout_s:.0f} s: {last}")


@dataclass
class ReplaceVoter(Nemesis):
    name: str = "replace-voter"
    victim: int | None = None
    removed: str = ""
    ids_note: str = ""  # the new node's id
    promoted_after_s: float | None = None
    _started: float = 0.0

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        # A replacement needs a quorum left without the victim: wait for the autopilot to have
        # promoted every node it will (at most max_voters), as it does within ~10 s of forming.
        want = min(cluster.n, MAX_VOTERS)
        deadline = time.monotonic() + PROMOTE_TIMEOUT_S
        seats: list[int] = []
        while time.monotonic() < deadline and len(seats) < want:
            _leader(cluster)
            seats = [i for i in range(cluster.n) if cluster.node_id(i) in voters(cluster)]
            time.sleep(0.5)
        if len(seats) < 3:
            raise RuntimeError(f"only {len(seats)} voters after {PROMOTE_TIMEOUT_S:.0f} s: no voter can "
                               "be replaced without losing the quorum")
        self.victim = rng.choice(seats)
        self.removed = cluster.node_id(self.victim)
        cluster.stop_node(self.victim)
        history.event(self.name, "start", detail=f"node={self.removed}")
        remove_member(cluster, self.removed)
        cluster.retired.add(self.removed)
        # The old host's data goes (as the removed id must never come back); a new node, a new id.
        data = cluster.root / f"n{self.victim}"
        data.rename(data.with_name(f"{data.name}.removed-{self.removed}"))
        cluster.ids[self.victim] = f"{self.removed}r{len(cluster.retired)}"
        cluster.start_node(self.victim)
        self.ids_note = cluster.node_id(self.victim)
        self._started = time.monotonic()
        history.event(self.name, "added", detail=f"node={cluster.node_id(self.victim)}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        if self.victim is not None:
            new = cluster.node_id(self.victim)
            deadline = time.monotonic() + PROMOTE_TIMEOUT_S
            while time.monotonic() < deadline:
                if new in voters(cluster):
                    self.promoted_after_s = round(time.monotonic() - self._started, 1)
                    break
                time.sleep(0.5)
        super().stop(cluster, history)

    def note(self) -> str:
        if self.victim is None:
            return ""
        return (f"{self.removed} removed, {self.ids_note} voter "
                f"{'after ' + str(self.promoted_after_s) + ' s' if self.promoted_after_s else 'never'}")

    def problems(self) -> list[str]:
        if self.victim is not None and self.promoted_after_s is None:
            return [f"the node that replaced {self.removed} was not promoted to voter within "
                    f"the hold + {PROMOTE_TIMEOUT_S:.0f} s"]
        return []
