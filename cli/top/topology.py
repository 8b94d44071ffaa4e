"""Who sees whom, for `meshkp top`'s picture of the mesh: groups and a reach matrix.

Each node's load summary names the peers that answered its last load exchange (`reach`).
Two members are linked when either reached the other; the groups are the connected components
of those links among the members that are alive or suspect and whose reach is known. More than
one group is a partition: the members of one group cannot exchange with those of another.
"""

from __future__ import annotations

from collections.abc import Sequence

from cli.top.model import MemberRow

SEEN, UNSEEN, UNKNOWN, SELF = "●", "○", "?", "·"
LIVE = ("alive", "suspect")


def _known(rows: Sequence[MemberRow]) -> list[MemberRow]:
    return [m for m in rows if m.status in LIVE and m.reach is not None]


def linked(a: MemberRow, b: MemberRow) -> bool:
    return bool((a.reach and b.id in a.reach) or (b.reach and a.id in b.reach))


def groups(rows: Sequence[MemberRow]) -> list[list[str]]:
    """Connected groups of live members with a known reach, each sorted, largest first."""
    members = _known(rows)
    left = {m.id: m for m in members}
    found: list[list[str]] = []
    while left:
        start = left.pop(min(left))
        group, todo = [start.id], [start]
        while todo:
            current = todo.pop()
            for other in [m for m in left.values() if linked(current, m)]:
                del left[other.id]
                group.append(other.id)
                todo.append(other)
        found.append(sorted(group))
    return sorted(found, key=lambda g: (-len(g), g))


def one_way(rows: Sequence[MemberRow]) -> list[tuple[str, str]]:
    """(a, b) where a reached b but b did not reach a: a link that works one way only."""
    members = _known(rows)
    return [(a.id, b.id) for a in members for b in members
            if a.id != b.id and a.reach and b.id in a.reach and b.reach is not None and a.id not in b.reach]


def groups_line(rows: Sequence[MemberRow], leader: str | None) -> str:
    """The groups as boxes: "[★n0 n1 n2]" when all see each other, "[n0 n1] ╳ [n2]" if split."""
    found = groups(rows)
    if not found:
        return "no reach known yet"
    boxes = ["[" + " ".join(("★" if n == leader else "") + n for n in g) + "]" for g in found]
    if len(boxes) == 1:
        return f"{boxes[0]} all see each other"
    return " ╳ ".join(boxes) + f"  partition: {len(boxes)} groups"


def matrix(rows: Sequence[MemberRow], leader: str | None = None) -> list[str]:
    """One line per live member: whether it reached each one (● yes, ○ no, ? unknown).

    Columns are numbered as the lines are, so long node ids still fit.
    """
    live = sorted((m for m in rows if m.status in LIVE), key=lambda m: m.id)
    width = max((len(m.id) for m in live), default=2) + 1
    digits = len(str(len(live)))
    lines = [" " * (digits + 2 + width) + " ".join(str(i).rjust(digits)
                                                 for i in range(1, len(live) + 1))]
    for index, a in enumerate(live, start=1):
        marks = []
        for b in live:
            if a.id == b.id:
                marks.append(SELF)
            elif a.reach is None:
                marks.append(UNKNOWN)
            else:
                marks.append(SEEN if b.id in a.reach else UNSEEN)
        name = (("★" if a.id == leader else " ") + a.id).ljust(width)
        lines.append(f"{str(index).rjust(digits)} {name} " + " ".join(m.rjust(digits) for m in marks))
    return lines
