"""`meshkp top`'s model: majority root, leader, load history, sparkline, failover order, keys,
events, topology, frame."""

from __future__ import annotations

import io

from rich.console import Console

from cli.top.collect import apply_load, members_of, sync_age
from cli.top.events import changes
from cli.top.keys import DOWN, ENTER, ViewState, decode
from cli.top.model import (
    LEADER_MARK,
    LoadHistory,
    MemberRow,
    Snapshot,
    failover_order,
    leader_of,
    majority_root,
    member_label,
    sort_rows,
    sparkline,
)
from cli.top.render import frame
from cli.top.topology import groups, groups_line, matrix, one_way


def test_majority_root_needs_more_than_half() -> None:
    assert majority_root(["a", "a", "b"]) == "a"
    assert majority_root(["a", "b"]) is None  # a tie is no majority
    assert majority_root(["a", "b", "c"]) is None
    assert majority_root([None, None, "a"]) == "a"  # members that did not answer do not vote
    assert majority_root([]) is None


def test_leader_of_highest_term_wins() -> None:
    rows = [MemberRow("n0", reachable=True, term=3, leader="n2"),
            MemberRow("n1", reachable=True, term=2, leader="n0"),
            MemberRow("n2", reachable=True, term=2, leader="n0"),
            MemberRow("n3", reachable=False, term=9, leader="n3")]  # unreachable: not counted
    assert leader_of(rows) == "n2"
    assert leader_of([MemberRow("n0", reachable=True)]) is None


def test_leader_mark() -> None:
    assert member_label("n1", "n1") == f"{LEADER_MARK}n1"
    assert member_label("n1", "n0") == " n1"
    assert member_label("n1", None) == " n1"


def test_load_history_adds_one_point_per_load_sample() -> None:
    history = LoadHistory(length=3)
    assert history.update("n0", None, None, None) == ([], [])  # no load known yet
    assert history.update("n0", 100.0, 10.0, 2.5) == ([10.0], [2.5])
    assert history.update("n0", 100.0, 10.0, 2.5) == ([10.0], [2.5])  # the same sample again
    assert history.update("n0", 102.0, 4.0, None) == ([10.0, 4.0], [2.5, 0.0])  # no request
    for at in (104.0, 106.0):
        history.update("n0", at, 1.0, 1.0)
    assert history.update("n0", 106.0, 1.0, 1.0) == ([4.0, 1.0, 1.0], [0.0, 1.0, 1.0])


def test_a_cluster_load_entry_fills_a_row() -> None:
    row = MemberRow("n2")
    entry = {"age_s": 0.8, "stale": False, "rtt_ms": 0.35, "last_contact_s": 1.2,
             "load": {"sampled_at": 1700000000.5, "client": {"rate": 12.5, "p99_ms": 3.1},
                      "reach": {"n0": 0.3, "n1": 0.4}, "agent_percent": 88}}
    assert apply_load(row, entry)
    assert (row.rtt_ms, row.client_rate, row.client_p99, row.agent_percent) == (0.35, 12.5, 3.1, 88)
    assert row.reach == {"n0", "n1"} and row.sampled_at == 1700000000.5
    stale = MemberRow("n3")
    assert not apply_load(stale, {"stale": True, "rtt_ms": 9.0, "load": entry["load"]})
    assert stale.rtt_ms == 9.0 and stale.reach is None  # the round trip still counts
    assert not apply_load(MemberRow("n4"), "junk")
    assert sync_age({"peers": {"a": {"last_sync_time": 90.0, "last_result": "synced"},
                               "b": {"last_sync_time": 99.0, "last_result": "error: x"}}},
                    100.0) == 10.0
    assert sync_age({"peers": {}}, 100.0) is None


def _reaching(**reach: str) -> list[MemberRow]:
    return [MemberRow(node, status="alive", reachable=True,
                      reach=frozenset(peers.split()) if peers != "?" else None)
            for node, peers in reach.items()]


def test_groups_find_a_partition_and_one_way_links() -> None:
    whole = _reaching(n0="n1 n2", n1="n0 n2", n2="n0 n1")
    assert groups(whole) == [["n0", "n1", "n2"]] and one_way(whole) == []
    assert groups_line(whole, "n0") == "[★n0 n1 n2] all see each other"
    split = _reaching(n0="n1", n1="n0", n2="", n3="n2")
    assert groups(split) == [["n0", "n1"], ["n2", "n3"]]
    assert groups_line(split, None) == "[n0 n1] ╳ [n2 n3]  partition: 2 groups"
    assert one_way(split) == [("n3", "n2")]
    unknown = _reaching(n0="n1", n1="?")
    assert groups(unknown) == [["n0"]]  # a member whose reach is unknown is left out
    grid = matrix(_reaching(n0="n1", n1="", n2="?"), "n0")
    assert grid[1].split() == ["1", "★n0", "·", "●", "○"]
    assert grid[2].split() == ["2", "n1", "○", "·", "○"]
    assert grid[3].split() == ["3", "n2", "?", "?", "·"]


def test_events_say_what_changed_between_polls() -> None:
    before = [MemberRow("n0", status="alive", reachable=True, role="leader", term=3, leader="n0",
                        policy_version=4, reach=frozenset({"n1"})),
              MemberRow("n1", status="alive", reachable=True, term=3, leader="n0",
                        policy_version=4, reach=frozenset({"n0"}))]
    assert changes([], before) == []
    after = [MemberRow("n0", status="suspect", reachable=False, reach=frozenset()),
             MemberRow("n1", status="alive", reachable=True, role="leader", term=4, leader="n1",
                       policy_version=5, drain=True, reach=frozenset()),
             MemberRow("n2", status="alive")]
    assert changes(before, after) == [
        "n2 joined (alive)", "n0 alive → suspect", "n1 draining", "leader n0 → n1 (term 4)",
        "policy v4 → v5", "partition: 2 groups"]


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 7, 14]) == "▁▅█"
    assert sparkline(range(20), width=4) == "▇▇██"  # the last 4, scaled to 19


def test_failover_order_prefers_current_then_alive_members() -> None:
    rows = [MemberRow("n2", status="alive", http="127.0.0.1:3"),
            MemberRow("n0", status="dead", http="127.0.0.1:1"),
            MemberRow("n1", status="alive", http="127.0.0.1:2")]
    assert failover_order("http://start:1", "http://127.0.0.1:2", rows) == [
        "http://127.0.0.1:2", "http://127.0.0.1:3", "http://start:1"]


def test_sort_rows() -> None:
    rows = [MemberRow("b", keys=1, status="dead"), MemberRow("a", keys=5, status="alive"),
            MemberRow("c", keys=None, status="suspect")]
    assert [m.id for m in sort_rows(rows, "id", None)] == ["a", "b", "c"]
    assert [m.id for m in sort_rows(rows, "keys", None)] == ["a", "b", "c"]
    assert [m.id for m in sort_rows(rows, "status", None)] == ["a", "c", "b"]
    assert [m.id for m in sort_rows(rows, "role", "c")][0] == "c"


def test_keys_change_the_view() -> None:
    view = ViewState()
    assert decode("j\x1b[Bq") == ["j", DOWN, "q"]
    assert view.handle("s") and view.sort_column == "status"
    for key in ("/", "n", "1", ENTER):
        view.handle(key)
    assert view.filter_text == "n1" and not view.filtering
    assert view.handle("q") is False  # quit while filtering is typed, not a quit
    view.handle("/")
    assert view.handle("q") is True and view.filter_text == "n1q"


def test_members_of_reads_cluster_nodes() -> None:
    body = {"self": "n1", "nodes": [
        {"id": "n0", "status": "alive", "incarnation": 4, "meta": {"http": "127.0.0.1:5"}},
        {"id": "n1", "status": "suspect", "http": "127.0.0.1:6"}, "junk"]}
    rows = members_of(body)
    assert [(r.id, r.status, r.http) for r in rows] == [("n0", "alive", "127.0.0.1:5"),
                                                        ("n1", "suspect", "127.0.0.1:6")]


def _render(snapshot: Snapshot, view: ViewState, width: int = 80, height: int = 24) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, color_system=None)
    console.print(frame(snapshot, view, height=height))
    return out.getvalue()


def test_frame_fits_80x24_and_marks_everything() -> None:
    rows = [MemberRow(f"node-{i:02d}", status="alive", http=f"h:{i}", reachable=True,
                      role="leader" if i == 0 else "follower", term=3, leader="node-00", keys=1234,
                      merkle_root=("ab" if i != 5 else "cd") * 32, pending=0, rates=[1, 5, 9],
                      p99s=[0.5, 2.5], rtt_ms=0.4, drain=i == 2) for i in range(40)]
    rows.append(MemberRow("[/]weird", status="dead", error="dead"))  # markup in an id is text
    snapshot = Snapshot("http://h:0", "http://h:0", members=rows)
    view = ViewState()
    text = _render(snapshot, view)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert f"{LEADER_MARK}node-00" in text and "▂▅█ 9" in text and "more rows" in text
    assert "▂█ 2.5" in text  # the p99 sparkline
    assert "abababab ✓" in text
    view.sort_index = 0
    for _ in range(6):  # "[/]weird" sorts first
        view.handle(DOWN)
    view.handle(ENTER)  # node-05's detail: its root is not the majority's
    detail = _render(snapshot, view)
    assert "node node-05" in detail and "cdcdcdcd ≠" in detail
    assert len(detail.splitlines()) <= 24
    view.handle("/")
    for key in "weird":
        view.handle(key)
    view.handle(ENTER)
    assert "[/]weird" in _render(snapshot, view)


def test_frame_of_an_unreachable_cluster() -> None:
    rows = [MemberRow("n0", status="alive", error="no answer")]
    text = _render(Snapshot("http://a", "http://b", members=rows, error="no member answers"),
                   ViewState())
    assert "no member answers" in text and "unreachable" in text


def test_a_small_mesh_shows_its_topology_and_events_in_80x24() -> None:
    rows = _reaching(n0="n1", n1="n0", n2="")
    for row in rows:
        row.role, row.term, row.leader, row.keys, row.merkle_root = "follower", 2, "n0", 7, "ab" * 32
    snapshot = Snapshot("http://h:0", "http://h:0", members=rows,
                        events=[(1_700_000_000.0 + i, f"event {i}") for i in range(9)])
    text = _render(snapshot, ViewState())
    lines = text.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert "[★n0 n1] ╳ [n2]  partition: 2 groups" in text
    assert any(line.split()[:2] == ["3", "n2"] and "○" in line for line in lines)  # the matrix
    assert "event 8" in text and "event 3" not in text  # the newest events that fit
