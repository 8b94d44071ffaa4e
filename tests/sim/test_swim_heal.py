"""After a partition heals, membership agrees again within one sync interval (LAN profile).

Regression: with Serf's 30 s reconnect interval and nothing else, a healed 2|3 split of 5 nodes
took up to 36 simulated seconds to reconverge (median 19 s over seeds 1-7): each side found the
other's dead members one reconnect ping at a time. Now the reconnect interval is 10 s and a
member that comes back is push-pulled at once, so both sides learn what they must refute.
"""

from __future__ import annotations

import pytest

from meshkp.sim.cluster import SimCluster
from meshkp.swim.config import SwimConfig
from meshkp.swim.types import Status
from tests.sim.conftest import MakeCluster

# The replication sync interval (meshkp/replication/config.py): the goal for the heal.
ONE_SYNC_INTERVAL_S = 10.0


def split_then_heal(cluster: SimCluster, left: list[str], right: list[str]) -> float | None:
    """Simulated seconds from the heal until every node sees every node alive (None: never)."""
    cluster.partition(left, right)

    def apart() -> bool:
        return all(cluster.sees(a, b, Status.DEAD) and cluster.sees(b, a, Status.DEAD)
                   for a in left for b in right)

    assert cluster.run_until(apart, timeout=120.0) is not None, "the sides never split"
    cluster.run(40.0)  # longer than gossip_to_the_dead_time: only reconnects can heal it
    cluster.heal()
    return cluster.run_until(cluster.converged, timeout=120.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_healed_2_3_split_reconverges_within_one_sync_interval(sim: MakeCluster, seed: int) -> None:
    cluster = sim(SwimConfig.lan(), seed=seed)
    cluster.start(5)
    assert cluster.run_until(cluster.converged, timeout=60.0) is not None
    names = [f"node-{i}" for i in range(5)]
    took = split_then_heal(cluster, names[:2], names[2:])
    assert took is not None and took <= ONE_SYNC_INTERVAL_S, f"reconverged after {took} s"
