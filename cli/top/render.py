"""One frame of `meshkp top`: header, member table, optional detail panel, keys help.

Everything from the network (ids, errors) is put into rich Text objects, never parsed as
markup, so a node id like "[/]" cannot break the frame.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli.top.keys import ViewState
from cli.top.model import MemberRow, Snapshot, member_label, sparkline

STATUS_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}
# /cluster/consensus names roles by the enum's name, lowercased (pre_candidate, removed).
ROLE_SHORT = {"leader": "lead", "follower": "foll", "candidate": "cand", "pre_candidate": "pre",
              "removed": "gone", "learner": "lrnr"}
ROOT_CHARS = 8
SPARK_WIDTH = 10
# Lines that are not member rows: header (2), table heading (1), footer (1), "more" (1).
CHROME_LINES = 5
DETAIL_LINES = 9


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
    parts.append(footer(view))
    return Group(*parts)


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
    for name, width, justify in (("node", 10, "left"), ("status", 7, "left"),
                                 ("role/term", 11, "left"), ("keys", 7, "right"),
                                 ("root", ROOT_CHARS + 2, "left"), ("push", 4, "right"),
                                 ("req/s", SPARK_WIDTH + 5, "left"), ("flags", 5, "left")):
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
        return [label, status, gone, Text(""), Text(""), Text(""), Text("-", style="dim"),
                Text("")]
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
            rate_cell(member), Text(flags or "-", style="yellow" if flags else "dim")]


def rate_cell(member: MemberRow) -> Text:
    if not member.rates:
        return Text("…", style="dim")
    text = Text(sparkline(member.rates, SPARK_WIDTH), style="cyan")
    text.append(f" {member.rates[-1]:.0f}")
    return text


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
        f"read-only {member.read_only}",
        f"req/s {', '.join(f'{r:.1f}' for r in member.rates[-6:]) or '?'}",
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
