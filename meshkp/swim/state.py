"""The member table: who we know, their status, incarnation, address and meta.

Holds the probe order too (a shuffled list, walked round-robin and reshuffled at each wrap,
SWIM §4.3), because picking probe targets and random gossip peers both need an indexable list.
All status changes go through `set_status`, which keeps the per-status counts exact.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from meshkp.net.addr import Addr
from meshkp.swim.messages import Alive, MemberRecord
from meshkp.swim.types import MemberInfo, Status


@dataclass(slots=True)
class Member:
    """Our mutable view of one member."""

    node_id: str
    addr: Addr
    incarnation: int
    status: Status
    meta: Mapping[str, str]
    state_change: float  # when `status` last changed (seconds, our clock)
    # The member's public key and its signature of the statement behind our view (its Alive
    # while alive, its Leave once left), relayed unchanged; empty for ourselves (signed on
    # the way out) and for members whose statement we have not heard signed.
    key: bytes = b""
    proof: bytes = b""

    def info(self) -> MemberInfo:
        return MemberInfo(self.node_id, self.addr, self.incarnation, self.status, dict(self.meta))

    def record(self) -> MemberRecord:
        return MemberRecord(self.node_id, self.addr, self.incarnation, self.status, self.meta,
                            self.key, self.proof)

    def alive(self) -> Alive:
        """The member's own Alive at its current incarnation (as it signed it, for relaying)."""
        return Alive(self.node_id, self.addr, self.incarnation, self.meta, self.key, self.proof)

    @property
    def gone(self) -> bool:
        """Dead or left: not probed, not counted in n."""
        return self.status >= Status.DEAD


class MemberTable:
    """Members by id, plus the shuffled probe order (which never contains ourselves)."""

    def __init__(self, local: Member, forget_after: float) -> None:
        self.local = local
        self._forget_after = forget_after
        self._members: dict[str, Member] = {local.node_id: local}
        self._order: list[str] = []
        self._index = 0
        self._counts: Counter[Status] = Counter({local.status: 1})

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def get(self, node_id: str) -> Member | None:
        return self._members.get(node_id)

    def count(self, status: Status) -> int:
        return self._counts[status]

    def active(self) -> int:
        """n for the scaling formulas: alive and suspect members, ourselves included, at least 1."""
        return max(1, self._counts[Status.ALIVE] + self._counts[Status.SUSPECT])

    def add(self, member: Member, rng: random.Random) -> None:
        """Insert a new member at a random place in the probe order.

        Appending would put every newcomer at the end, making the failure-detection bound much
        worse on average (memberlist aliveNode).
        """
        if member.node_id in self._members:
            raise ValueError(f"member {member.node_id} already known")
        self._members[member.node_id] = member
        self._counts[member.status] += 1
        self._order.append(member.node_id)
        j = rng.randrange(len(self._order))
        self._order[j], self._order[-1] = self._order[-1], self._order[j]

    def set_status(self, member: Member, status: Status, now: float) -> Status:
        """Change a member's status (stamping state_change); return the old status."""
        old = member.status
        if old != status:
            self._counts[old] -= 1
            self._counts[status] += 1
            member.status = status
            member.state_change = now
        return old

    def next_probe_target(self, now: float, rng: random.Random) -> Member | None:
        """The next alive or suspect member in round-robin order, or None if there is none."""
        checked = 0
        while checked <= len(self._order):
            if self._index >= len(self._order):
                self._wrap(now, rng)
                checked += 1
                if not self._order:
                    return None
                continue
            member = self._members[self._order[self._index]]
            self._index += 1
            checked += 1
            if not member.gone:
                return member
        return None

    def random_members(
        self, k: int, rng: random.Random, accept: Callable[[Member], bool]
    ) -> list[Member]:
        """Up to k distinct random members passing `accept` (memberlist kRandomNodes).

        Tries at most 3 * len random picks: exhaustive enough for small tables, O(k) for large.
        """
        n = len(self._order)
        picked: list[Member] = []
        seen: set[str] = set()
        for _ in range(3 * n):
            if len(picked) >= k:
                break
            node_id = self._order[rng.randrange(n)]
            if node_id in seen:
                continue
            seen.add(node_id)
            member = self._members[node_id]
            if accept(member):
                picked.append(member)
        return picked

    def members(self) -> list[Member]:
        return list(self._members.values())

    def _wrap(self, now: float, rng: random.Random) -> None:
        """End of a probe round: forget long-gone members and reshuffle (memberlist resetNodes)."""
        keep: list[str] = []
        for node_id in self._order:
            m = self._members[node_id]
            if m.gone and now - m.state_change > self._forget_after:
                del self._members[node_id]
                self._counts[m.status] -= 1
            else:
                keep.append(node_id)
        rng.shuffle(keep)
        self._order = keep
        self._index = 0
