"""Small tools for rule-by-rule tests: cores on one clock, messages delivered by hand."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace

from meshkp.control.config import ControlConfig
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, MembershipChange
from meshkp.control.raft.messages import RaftMessage
from meshkp.control.raft.ready import Outgoing, Ready
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored

CONFIG = ControlConfig()


def founding(voters: Iterable[str], learners: Iterable[str] = ()) -> Restored:
    """Every node's starting disk: one CONFIG entry naming the voters and learners."""
    voter_set = frozenset(voters)
    change = ConfigChange(MembershipChange(ChangeOp.BOOTSTRAP, sorted(voter_set)[0]),
                          Configuration(voter_set, frozenset(learners)))
    return Restored(HardState(1, "", 0), entries=(Entry(1, 1, EntryKind.CONFIG, change.encode()),))


def core(node_id: str, restored: Restored, now: float = 0.0, config: ControlConfig = CONFIG,
         seed: int = 0) -> RaftCore:
    return RaftCore(config, node_id, now, rng=random.Random(f"{seed}-{node_id}"), restored=restored)


def drain(c: RaftCore, compact: bool = False) -> list[Ready]:
    """Take every Ready the core has (as a driver that persists and applies at once).

    With `compact`, snapshot when due; the snapshot data names the index it covers.
    """
    out = []
    while c.has_ready():
        ready = c.ready()
        c.advance(ready)
        out.append(ready)
        if compact and c.snapshot_due():
            c.compact(c.applied, f"state@{c.applied}".encode())
    return out


def messages(readies: list[Ready]) -> list[Outgoing]:
    return [m for r in readies for m in r.messages]


class Net:
    """Cores on one shared clock; messages are delivered at once, in order, unless dropped."""

    def __init__(self, ids: Iterable[str], learners: Iterable[str] = (), config: ControlConfig = CONFIG,
                 seed: int = 0) -> None:
        ids = list(ids)
        self.config = config
        state = founding(ids, learners)
        self.cores = {i: core(i, state, 0.0, config, seed) for i in [*ids, *learners]}
        self.now = 0.0
        self.drop: Callable[[str, str, RaftMessage], bool] = lambda src, dst, m: False
        self.down: set[str] = set()
        self.applied: dict[str, list[Entry]] = {i: [] for i in self.cores}

    def pump(self, limit: int = 10_000) -> None:
        """Deliver messages until none is left (bounded: a livelock fails the test)."""
        queue: list[tuple[str, Outgoing]] = []
        for _ in range(limit):
            for node_id, c in self.cores.items():
                if node_id in self.down:
                    continue
                for ready in drain(c, compact=True):
                    self.applied[node_id].extend(ready.committed)
                    queue.extend((node_id, m) for m in ready.messages)
            if not queue:
                return
            src, out = queue.pop(0)
            if out.to in self.down or out.to not in self.cores or self.drop(src, out.to, out.message):
                continue
            self.cores[out.to].handle(self.now, src, out.message)
        raise AssertionError("messages kept flowing: a livelock")

    def advance(self, seconds: float, step: float = 0.01) -> None:
        """Move the clock, ticking every live core and delivering what they send."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            for node_id, c in self.cores.items():
                if node_id not in self.down:
                    c.tick(self.now)
            self.pump()

    def leader(self) -> str | None:
        leaders = [i for i, c in self.cores.items()
                   if i not in self.down and c.is_leader_with_lease(self.now)]
        assert len(leaders) <= 1, leaders
        return leaders[0] if leaders else None

    def elect(self, limit: float = 5.0) -> str:
        end = self.now + limit
        while self.now < end:
            leader = self.leader()
            if leader is not None:
                return leader
            self.advance(0.05)
        raise AssertionError(f"no leader within {limit} s")


def fast(**changes: object) -> ControlConfig:
    """The default config with some fields changed (validated)."""
    return replace(CONFIG, **changes).validate()  # type: ignore[arg-type]
