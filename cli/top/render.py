"""One frame of `meshkp top`: header, member table, topology, recent events, optional detail
panel, keys help. The table comes first; the topology and the events take the lines left.

Everything from the network (ids, errors) is put into rich Text objects, never parsed as
markup, so a node id like "[/]" cannot break the frame.
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli.top.keys import ViewState
from cli.top.model import MemberRow, Snapshot, member_label, sparkline
from cli.top.topology import groups_line, matrix, one_way

STATUS_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}
# /cluster/consensus names roles by the enum's name, lowercased (pre_candidate, removed).
ROLE_SHORT = {"leader": "lead", "follower": "foll", "candidate": "cand", "pre_candidate": "pre",
              "removed": "gone", "learner": "lrnr"}
ROOT_CHARS = 8
SPARK_WIDTH = 5
# Lines that are not member rows: header (2), table heading (1), footer (1), "more" (1).
CHROME_LINES = 5
DETAIL_LINES = 10
# The reach matrix is drawn for this many live members at most (one line each, plus a head).
MATRIX_MAX = 8
# Event lines shown at most (the newest), and the fewest worth a section.
EVENT_LINES = 5


def frame(snapshot: Snapshot | None, view: ViewState, height: int = 24) -> RenderableType:
    """The whole screen for `snapshot`, at most `height` lines tall."""
    if snapshot is None:
        return Group(Text("meshkp top: polling the cluster..."), footer(view))
    rows = view.visible(snapshot)
    view.clamp(len(rows))
    detail = view.detail and rows
    room = max(1, height - CHROME_LINES - (DETAIL_LINES if detail else 0))
    start = max(0, min(view.selected - room + 1, len(rows) - room)) if len(rows) > room else 0
    shown = rows[start:start + room]
    parts: list[RenderableType] = [*header(snapshot),
                                   table(shown, snapshot, view.selected - start)]
    if len(rows) > len(shown):
        parts.append(Text(f"  ({len(rows) - len(shown)} more rows: j/k to scroll)", style="dim"))
    if detail:
        parts.append(detail_panel(rows[view.selected], snapshot))
    spare = room - len(shown)
    picture = topology(snapshot, spare)
    parts += picture
    parts += events(snapshot, spare - len(picture))
    parts.append(footer(view))
    return Group(*parts)


def topology(snapshot: Snapshot, lines: int) -> list[Text]:
    """Who sees whom: the groups on one line, then the reach matrix if it fits in `lines`."""
    if lines < 1:
        return []
    leader = snapshot.leader
    line = Text("topology ", style="bold")
    split = groups_line(snapshot.members, leader)
    line.append(split, style="bold red" if "partition" in split else "green")
    broken = one_way(snapshot.members)
    if broken:
        line.append("  one-way: " + ", ".join(f"{a}→{b}" for a, b in broken[:3]), style="yellow")
    out = [line]
    grid = matrix(snapshot.members, leader)
    if len(grid) - 1 <= MATRIX_MAX and len(grid) + 1 <= lines and len(grid) > 2:
        out += [Text("  " + row, style="dim" if i == 0 else "") for i, row in enumerate(grid)]
    for text in out:
        text.no_wrap, text.overflow = True, "ellipsis"
    return out


def events(snapshot: Snapshot, lines: int) -> list[Text]:
    """The newest events, as many as fit in `lines` (a heading and at least one)."""
    if lines < 2:
        return []
    shown = snapshot.events[-min(EVENT_LINES, lines - 1):]
    out = [Text("events", style="bold")]
    if not shown:
        out.append(Text("  none since top started", style="dim"))
    for when, what in shown:
        stamp = time.strftime("%H:%M:%S", time.localtime(when))
        line = Text(f"  {stamp} ", style="dim")
        line.append(what, style="yellow" if any(w in what for w in ("suspect", "dead",
                                                                  "partition", "no leader"))
                    else "")
        out.append(line)
    for text in out:
        text.no_wrap, text.overflow = True, "ellipsis"
    return out


def header(snapshot: Snapshot) -> list[Text]:
    alive = sum(1 for m in snapshot.members if m.status == "alive")
    leader = snapshot.leader
    first = Text.assemble(("meshkp top", "bold"), f"  {len(snapshot.members)} members, ",
                          (f"{alive} alive", "green"), "  leader ",
                          (leader or "none", "bold" if leader else "red"))
    version = snapshot.policy_version
    first.append(f"  policy v{version}" if version is not None else "  policy ?")
    conflicts = snapshot.conflicts
    first.append(f"  conflicts {conflicts}", style="yellow" if conflicts else "")
    second = Text(f"via {snapshot.source}", style="dim")
    if snapshot.source != snapshot.start_url:
        second.append(f" (failed over from {snapshot.start_url})", style="yellow")
    if snapshot.error:
        second = Text(snapshot.error, style="bold red")
    for line in (first, second):
        line.no_wrap, line.overflow = True, "ellipsis"
    return [first, second]


def table(rows: list[MemberRow], snapshot: Snapshot, selected: int) -> Table:
    grid = Table(box=None, padding=(0, 1), show_edge=False, expand=False, header_style="bold")
    for name, width, justify in (("node", 9, "left"), ("status", 7, "left"),
                                 ("role/term", 11, "left"), ("keys", 6, "right"),
                                 ("root", ROOT_CHARS + 2, "left"), ("push", 4, "right"),
                                 ("rtt", 4, "right"), ("req/s", SPARK_WIDTH + 5, "left"),
                                 ("p99 ms", SPARK_WIDTH + 5, "left"), ("fl", 2, "left")):
        grid.add_column(name, max_width=width, min_width=min(width, len(name)),
                        no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
    leader, majority = snapshot.leader, snapshot.majority_root
    for index, member in enumerate(rows):
        grid.add_row(*cells(member, leader, majority),
                     style="reverse" if index == selected else None)
    return grid


def cells(member: MemberRow, leader: str | None, majority: str | None) -> list[Text]:
    label = Text(member_label(member.id, leader), style="bold" if member.id == leader else "")
    status = Text(member.status, style=STATUS_STYLE.get(member.status, "magenta"))
    if not member.reachable:
        gone = Text("unreachable" if member.status in ("alive", "suspect") else "-", style="red")
        # Its last rates would read as current: show none.
        return [label, status, gone, Text(""), Text(""), Text(""), Text(""),
                Text("-", style="dim"), Text("-", style="dim"), Text("")]
    role = ROLE_SHORT.get(member.role or "", member.role or "?")
    role_text = Text(f"{role}/{member.term if member.term is not None else '?'}",
                     style="bold cyan" if member.role == "leader" else "")
    root = member.merkle_root or ""
    matches = root and root == majority
    root_text = Text(root[:ROOT_CHARS], style="green" if matches else "yellow")
    root_text.append(" ✓" if matches else " ≠", style="green" if matches else "bold yellow")
    flags = ("D" if member.drain else "") + ("R" if member.read_only else "")
    return [label, status, role_text, Text(_num(member.keys)), root_text,
            Text(_num(member.pending), style="yellow" if member.pending else ""),
            Text(_short(member.rtt_ms), style="dim" if member.rtt_ms is None else ""),
            spark_cell(member.rates, "cyan"), spark_cell(member.p99s, "magenta"),
            Text(flags or "-", style="yellow" if flags else "dim")]


def spark_cell(values: list[float], style: str) -> Text:
    if not values:
        return Text("…", style="dim")
    text = Text(sparkline(values, SPARK_WIDTH), style=style)
    text.append(f" {_short(values[-1])}")
    return text


def _short(value: float | None) -> str:
    """A number in at most 4 characters: 0.42, 3.1, 12, 1.2k."""
    if value is None:
        return "-"
    if value >= 9999.5:
        return f"{value / 1000:.0f}k"
    if value >= 999.5:
        return f"{value / 1000:.1f}k"
    if value >= 9.95 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 0.995 else f"{value:.2f}"


def _num(value: int | None) -> str:
    return "?" if value is None else str(value)


def detail_panel(member: MemberRow, snapshot: Snapshot) -> Panel:
    lines = [
        f"http {member.http or '?'}   status {member.status}   incarnation {_num(member.incarnation)}",
        f"role {member.role or '?'}   term {_num(member.term)}   sees leader {member.leader or '?'}",
        f"keys {_num(member.keys)}   conflicts {_num(member.conflicts)}   pending pushes "
        f"{_num(member.pending)}",
        f"merkle {member.merkle_root or '?'}",
        f"routing weight {_num(member.weight)} zone {member.zone or '-'} drain {member.drain} "
        f"read-only {member.read_only}   agent {_num(member.agent_percent)}%",
        f"rtt {_short(member.rtt_ms)} ms   last contact {_short(member.last_contact_s)} s   "
        f"sync lag {_short(member.sync_age_s)} s   load age {_short(member.load_age_s)} s",
        f"req/s {', '.join(_short(r) for r in member.rates[-6:]) or '?'}   p99 ms "
        f"{', '.join(_short(p) for p in member.p99s[-6:]) or '?'}",
        f"error {member.error}" if member.error else "",
    ]
    body = Text("\n".join(line for line in lines if line), no_wrap=True, overflow="ellipsis")
    return Panel(body, title=Text(f"node {member.id}"), height=DETAIL_LINES, expand=True)


def footer(view: ViewState) -> Text:
    if view.filtering:
        return Text(f"filter: {view.filter_text}▏ (Enter to apply, Esc to clear)", style="bold")
    text = Text(f"q quit  s sort ({view.sort_column})  / filter", style="dim")
    if view.filter_text:
        text.append(f" [{view.filter_text}]", style="bold")
    text.append("  j/k ↑/↓ select  Enter detail", style="dim")
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
