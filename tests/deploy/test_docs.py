"""docs/monitoring.md and docs/deployment.md name what deploy/ and `meshkp lb-config` hold, so
an alert, an expected metric or an option added later cannot go undocumented."""

from __future__ import annotations

import re

from cli.lb_config import lb_config
from tests.deploy.conftest import REPO
from tests.deploy.expected_metrics import FROM_ELSEWHERE
from tests.deploy.test_alerts import rules

MONITORING = (REPO / "docs" / "monitoring.md").read_text()
DEPLOYMENT = (REPO / "docs" / "deployment.md").read_text()


def test_every_alert_is_explained() -> None:
    explained = set(re.findall(r"^\| `(Meshkp\w+)` \(", MONITORING, re.MULTILINE))
    assert explained == {str(rule["alert"]) for rule in rules()}


def test_every_metric_from_elsewhere_is_listed() -> None:
    listed = set(re.findall(r"`(meshkp_\w+)`", MONITORING.split("## Metrics from elsewhere")[1]))
    assert listed == {name for name in FROM_ELSEWHERE if name.startswith("meshkp_")}


def test_every_lb_config_option_is_documented() -> None:
    documented = set(re.findall(r"^\| `(--[a-z-]+)", DEPLOYMENT, re.MULTILINE))
    options = {opt for param in lb_config.params for opt in param.opts if opt.startswith("--")}
    assert options <= documented
