"""A policy log without Raft, for the data-plane effects' tests: real entries, applied with
the real `apply_entry` on every attached plane in log order, as the control plane's driver
applies committed entries. It stands for consensus only (one appender, no elections), so
the effects are tested against the very `PolicyState`/`Applied` values they get in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable

from meshkp.control.policy.apply import Applied, apply_entry
from meshkp.control.policy.commands import Command, Proposal
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.types import Entry, EntryKind


class PolicyLog:
    """The committed log of a test cluster; `plane(node)` is one node's view of it."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.planes: list[LogPlane] = []
        self.hlc = 1 << 40

    def plane(self, node: str, leader: bool = False) -> LogPlane:
        plane = LogPlane(self, node, leader)
        self.planes.append(plane)
        return plane

    def append(self, proposal: Proposal) -> Entry:
        entry = Entry(len(self.entries) + 1, 1, EntryKind.COMMAND, proposal.encode())
        self.entries.append(entry)
        for plane in self.planes:
            plane.catch_up()
        return entry


class LogPlane:
    """One node's applied state of a PolicyLog; `paused` holds it behind the log."""

    def __init__(self, log: PolicyLog, node: str, leader: bool) -> None:
        self.log = log
        self.node = node
        self.leader = leader
        self.paused = False
        self._state = PolicyState()
        self._observers: list[Callable[[Applied], None]] = []
        self.applied: list[Applied] = []

    @property
    def state(self) -> PolicyState:
        return self._state

    @property
    def is_leader(self) -> bool:
        return self.leader

    def observe(self, fn: Callable[[Applied], None]) -> None:
        self._observers.append(fn)

    def catch_up(self) -> None:
        while not self.paused and self._state.token.index < len(self.log.entries):
            applied = apply_entry(self._state, self.log.entries[self._state.token.index])
            self._state = applied.state
            self.applied.append(applied)
            for fn in self._observers:
                fn(applied)

    async def propose(self, command: Command, actor: str, *, timeout: float | None = None) -> Applied:
        self.log.hlc += 1
        entry = self.log.append(Proposal(command, actor, self.node, self.log.hlc))
        self.catch_up()
        return next(a for a in self.applied if a.token == entry.token)
