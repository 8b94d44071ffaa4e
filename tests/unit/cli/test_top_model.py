"""`meshkp top`'s model: majority root, leader, rates, sparkline, failover order, keys, frame."""

from __future__ import annotations

import io

from rich.console import Console

from cli.top.collect import client_requests, members_of
from cli.top.keys import DOWN, ENTER, ViewState, decode
from cli.top.model import (
    LEADER_MARK,
    MemberRow,
    RateHistory,
    Snapshot,
    failover_order,
    leader_of,
    majority_root,
    member_label,
    sort_rows,
    sparkline,
)
from cli.top.render import frame


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


def test_rates_from_counter_totals() -> None:
    history = RateHistory(length=3)
    assert history.update("n0", 10.0, 100) == []
    assert history.update("n0", 12.0, 120) == [10.0]
    assert history.update("n0", 13.0, None) == [10.0]  # no answer: nothing added
    assert history.update("n0", 14.0, 5) == [10.0]  # counter reset (restart): start over
    assert history.update("n0", 15.0, 8) == [10.0, 3.0]
    for now in (16.0, 17.0):
        history.update("n0", now, 8)
    assert history.update("n0", 18.0, 8) == [0.0, 0.0, 0.0]  # only the last 3 kept


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


def test_metrics_count_client_requests_only() -> None:
    text = ('# TYPE meshkp_http_requests_total counter\n'
            'meshkp_http_requests_total{endpoint="/pks/lookup",op="get",status="200"} 7.0\n'
            'meshkp_http_requests_total{endpoint="/pks/add",op="",status="200"} 2.0\n'
            'meshkp_http_requests_total{endpoint="/cluster/nodes",op="",status="200"} 50.0\n'
            'meshkp_http_requests_total{endpoint="/metrics",op="",status="200"} 50.0\n')
    assert client_requests(text) == 9.0


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
                      drain=i == 2) for i in range(40)]
    rows.append(MemberRow("[/]weird", status="dead", error="dead"))  # markup in an id is text
    snapshot = Snapshot("http://h:0", "http://h:0", members=rows)
    view = ViewState()
    text = _render(snapshot, view)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert f"{LEADER_MARK}node-00" in text and "▂▅█ 9" in text and "more rows" in text
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
