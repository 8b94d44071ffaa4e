"""The default suite's one chaos scenario (~60 s): 5 real nodes with the shipped `lan` gossip
profile and sync interval, 3 concurrent writers (uploads at one/quorum/all, admin deletes and
re-uploads), a 2|3 partition held 20 s in network namespaces (kill -9 of two nodes on loopback
when namespaces are not available), then the heal. The Jepsen-style checker (chaos/checker.py)
must find nothing lost, resurrected, stale or unexpected, and the mesh must reconverge by
itself, without a forced sync. The longer and harsher runs are `make chaos` / `make chaos-long`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos import nemesis as nem
from chaos.cluster import ChaosCluster
from chaos.netns import Topology, unavailable_reason
from chaos.scenario import Scenario, run

pytestmark = pytest.mark.integration

N = 5
SEED = int(os.environ.get("MESHKP_CHAOS_SEED", "20240601"))


def test_chaos_minute(tmp_path: Path) -> None:
    topology = None
    if unavailable_reason() is None:
        topology = Topology(N)
        try:
            topology.create()
        except RuntimeError:
            topology.close()
            topology = None
    faults: list[nem.Nemesis] = ([nem.Partition(sides=[[0, 1, 2], [3, 4]])] if topology
                                 else [nem.Kill(victims=[3, 4])])
    cluster = None
    try:
        cluster = ChaosCluster.launch(tmp_path / "mesh", N, topology=topology, profile="lan",
                                      sync_interval_s=10.0)
        outcome = run(cluster, Scenario("minute", faults, hold_s=20.0, seed=SEED))
        print(outcome.table)
        assert outcome.result.acked > 100, "the writers barely wrote: the run proves nothing"
        assert not outcome.problems, outcome.problems
    finally:
        if cluster is not None:
            cluster.close()
        if topology is not None:
            topology.close()
