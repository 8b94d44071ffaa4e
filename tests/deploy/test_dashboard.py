"""deploy/grafana/meshkp.json: a dashboard Grafana can import, whose every panel query names
metrics a real node exports (or expected_metrics.py lists with their source), covering the
areas issue 10 asks for."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.conftest import DEPLOY
from tests.deploy.expected_metrics import FROM_ELSEWHERE
from tests.deploy.promql import metric_names
from tests.deploy.test_alerts import rules

DASHBOARD = DEPLOY / "grafana" / "meshkp.json"
_LABEL_VALUES = re.compile(r"label_values\((\w+)")
# A metric family per area of the dashboard that issue 10 names.
AREAS = {
    "HTTP rate by op and status": "meshkp_http_requests_total",
    "HTTP latency": "meshkp_http_request_seconds_bucket",
    "keys": "meshkp_keys",
    "replication lag": "meshkp_replication_lag_seconds_bucket",
    "sync rounds": "meshkp_replication_sync_rounds_total",
    "sync bytes": "meshkp_replication_bytes_out_total",
    "gossip messages": "meshkp_frames_sent_total",
    "gossip bytes": "meshkp_bytes_sent_total",
    "suspicion and dead events": "meshkp_membership_events_total",
    "conflicts": "meshkp_conflicts_pending",
    "cache hit rate": "meshkp_served_cache_hits",
    "membership counts": "meshkp_membership_members",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def panel_names(panel: dict[str, Any]) -> set[str]:
    return {name for target in panel["targets"] for name in metric_names(target["expr"])}


def test_every_panel_has_a_query_on_the_chosen_data_source() -> None:
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert panel_names({"targets": [target]}), f"{panel['title']}: {target['expr']}"


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_query_names_an_exported_metric(node_metrics: set[str]) -> None:
    unknown = {}
    for panel in panels():
        missing = panel_names(panel) - node_metrics - FROM_ELSEWHERE.keys()
        if missing:
            unknown[panel["title"]] = sorted(missing)
    variables = dashboard()["templating"]["list"]
    for variable in variables:
        if variable["type"] == "query":
            (metric,) = _LABEL_VALUES.findall(variable["query"]["query"])
            if metric not in node_metrics | FROM_ELSEWHERE.keys():
                unknown[f"${variable['name']}"] = [metric]
    assert not unknown, f"metrics no node exports and expected_metrics.py does not list: {unknown}"


def test_the_dashboard_covers_each_area() -> None:
    used = set().union(*(panel_names(p) for p in panels()))
    assert {area: name for area, name in AREAS.items() if name not in used} == {}


def test_every_listed_outside_metric_is_used() -> None:
    used = set().union(*(panel_names(p) for p in panels()))
    used |= set().union(*(metric_names(str(rule["expr"])) for rule in rules()))
    assert sorted(FROM_ELSEWHERE.keys() - used) == []
