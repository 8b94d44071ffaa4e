"""The Jepsen-style scenarios (chaos/scenario.py), each on 5 nodes in network namespaces with
the shipped `lan` gossip profile and sync interval, concurrent writers, seeds from the run
(MESHKP_CHAOS_SEED). Each fault is held longer than the LAN suspicion timeout, then healed; the
checker judges the history and the mesh must reconverge by itself (no forced sync).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from chaos import nemesis as nem
from chaos.cluster import ChaosCluster
from chaos.scenario import Outcome, Scenario, run

pytestmark = [pytest.mark.chaos, pytest.mark.netns, pytest.mark.slow]  # ~90 s each: not in `make chaos`

N = 5
HOLD_S = float(os.environ.get("MESHKP_CHAOS_HOLD", "30"))  # > the LAN suspicion timeout (~24 s max)
SCENARIOS: dict[str, Callable[[], list[nem.Nemesis]]] = {
    "partition-2-3": lambda: [nem.Partition(sides=[[0, 1, 2], [3, 4]])],
    "one-way": lambda: [nem.one_way([0], [1, 2, 3, 4])],
    "ring": lambda: [nem.majorities_ring(N)],
    "bridge": lambda: [nem.bridge([0, 1], 2, [3, 4])],
    "loss30": lambda: [nem.Loss(probability=0.3)],
    "pause": lambda: [nem.Pause(victim=4)],
    "kill9": lambda: [nem.Kill(victims=[3, 4])],
    "disk-full": lambda: [nem.DiskFull(victim=2)],
    "corrupt": lambda: [nem.Corrupt(victim=1)],
}


def report(outcome: Outcome) -> None:
    print(outcome.table)
    print(f"extra={outcome.extra}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str, launch: Callable[..., ChaosCluster], seed: int) -> None:
    small = {2: "64m"} if name == "disk-full" else None
    cluster = launch(N, netns=True, profile="lan", sync_interval_s=10.0, small_disks=small)
    outcome = run(cluster, Scenario(name, SCENARIOS[name](), hold_s=HOLD_S, seed=seed))
    report(outcome)
    assert not outcome.problems, outcome.problems
