"""The name extraction the deploy/ tests rely on: a wrong extraction would let a dashboard or an
alert name a metric nobody exports, or flag one that is fine."""

from __future__ import annotations

import pytest

from tests.deploy.promql import exported_names, metric_names


@pytest.mark.parametrize(("expr", "names"), [
    ('up{job="meshkp"} == 0', {"up"}),
    ("sum by (instance, le) (rate(meshkp_http_request_seconds_bucket{op=~\"get|index\"}[5m]))",
     {"meshkp_http_request_seconds_bucket"}),
    ("histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval])))", {"a_bucket"}),
    ("time() - max by (instance) (meshkp_replication_last_sync_timestamp) > 100",
     {"meshkp_replication_last_sync_timestamp"}),
    ("a / on (instance) group_left (zone) b offset 5m", {"a", "b"}),
    ('count_values("root", x) or vector(0)', {"x"}),
    ("rate(a_total[5m]) and bool b > 1e3 unless c", {"a_total", "b", "c"}),
    ('x{path="/pks/lookup", instance=~"$instance"}', {"x"}),
    ("predict_linear(fs_avail[6h], 24 * 3600) < 0", {"fs_avail"}),
])
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


EXPOSITION = """\
# HELP meshkp_frames_sent Frames sent
# TYPE meshkp_frames_sent counter
# HELP meshkp_keys Live keys
# TYPE meshkp_keys gauge
meshkp_keys 3.0
# HELP lag Lag
# TYPE lag histogram
lag_bucket{le="+Inf"} 1.0
lag_count 1.0
lag_sum 0.5
"""


def test_exported_names_cover_families_without_samples() -> None:
    names = exported_names(EXPOSITION)
    assert {"meshkp_frames_sent_total", "meshkp_keys", "lag_bucket", "lag_count", "lag_sum"} <= names
    assert "meshkp_frames_sent" not in names  # a counter is read as NAME_total
