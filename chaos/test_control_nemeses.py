"""The control plane under faults aimed at its leader, on 5 nodes in network namespaces (lan
gossip and control profiles): a stream of policy changes to random nodes beside the key writers.
The control checker (chaos/control_checker.py) proves that no committed change is lost, that
every node applied the same entries in the same order, that a minority never commits, and the
run that every node ends at one policy version with equal Merkle roots.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from chaos import control_nemesis as cn
from chaos.cluster import ChaosCluster
from chaos.nemesis import Nemesis
from chaos.scenario import Scenario, run

pytestmark = [pytest.mark.chaos, pytest.mark.netns, pytest.mark.slow]  # ~90 s each: not in `make chaos`

N = 5
HOLD_S = float(os.environ.get("MESHKP_CHAOS_HOLD", "20"))
SCENARIOS: dict[str, Callable[[], list[Nemesis]]] = {
    "kill-leader": lambda: [cn.KillLeader(), cn.KillLeader()],
    "isolate-leader": lambda: [cn.IsolateLeader()],
    "pause-leader": lambda: [cn.PauseLeader()],
    "skew-leader": lambda: [cn.SkewLeader(offset="+300s")],
    "replace-voter": lambda: [cn.ReplaceVoter()],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_control_scenario(name: str, launch: Callable[..., ChaosCluster], seed: int) -> None:
    if name == "skew-leader" and not cn.faketime_available():
        pytest.skip("needs libfaketime's `faketime` (apt-get install -y faketime; make apt)")
    cluster = launch(N, netns=True, profile="lan", sync_interval_s=10.0)
    outcome = run(cluster, Scenario(name, SCENARIOS[name](), hold_s=HOLD_S, seed=seed, control=True))
    print(outcome.table)
    print(f"extra={outcome.extra}")
    assert not outcome.problems, outcome.problems
