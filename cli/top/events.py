"""The recent events `meshkp top` lists: what changed between two polls of the cluster.

Membership (a member's status, a member joining or gone), the leader and its term, the policy
version, each member's drain and read-only flags, and a partition appearing or healing. Pure
functions of two snapshots' rows; the collector keeps the last MAX_EVENTS.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from cli.top.model import MemberRow, leader_of
from cli.top.topology import groups

MAX_EVENTS = 50


def changes(before: Sequence[MemberRow], after: Sequence[MemberRow]) -> list[str]:
    """What differs from `before` to `after`, one short line each (empty on the first poll)."""
    if not before:
        return []
    out: list[str] = []
    old = {m.id: m for m in before}
    new = {m.id: m for m in after}
    for node in sorted(new.keys() - old.keys()):
        out.append(f"{node} joined ({new[node].status})")
    for node in sorted(old.keys() - new.keys()):
        out.append(f"{node} is gone from the member list")
    for node in sorted(old.keys() & new.keys()):
        a, b = old[node], new[node]
        if a.status != b.status:
            out.append(f"{node} {a.status} → {b.status}")
        if b.reachable and a.reachable:
            for flag, label in (("drain", "draining"), ("read_only", "read-only")):
                if getattr(a, flag) != getattr(b, flag):
                    out.append(f"{node} {label}" if getattr(b, flag) else f"{node} no longer {label}")
    old_leader, new_leader = leader_of(before), leader_of(after)
    if new_leader != old_leader and new_leader is not None:
        term = max((m.term or 0 for m in after if m.reachable), default=0)
        out.append(f"leader {old_leader or 'none'} → {new_leader} (term {term})")
    elif old_leader is not None and new_leader is None:
        out.append(f"no leader (was {old_leader})")
    old_version, new_version = _version(before), _version(after)
    if old_version is not None and new_version is not None and new_version > old_version:
        out.append(f"policy v{old_version} → v{new_version}")
    old_split, new_split = len(groups(before)), len(groups(after))
    if new_split > 1 and old_split <= 1:
        out.append(f"partition: {new_split} groups")
    elif old_split > 1 and new_split <= 1:
        out.append("partition healed")
    return out


def _version(rows: Iterable[MemberRow]) -> int | None:
    versions = [m.policy_version for m in rows if m.policy_version is not None]
    return max(versions) if versions else None


class EventLog:
    """The last MAX_EVENTS events with their time."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, str]] = deque(maxlen=MAX_EVENTS)
        self._last: list[MemberRow] = []

    def update(self, rows: Sequence[MemberRow], now: float) -> list[tuple[float, str]]:
        for line in changes(self._last, rows):
            self.events.append((now, line))
        self._last = list(rows)
        return list(self.events)
