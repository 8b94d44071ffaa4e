"""Seeded simulations: Raft's safety properties under crashes, partitions, pauses and loss.

Each seed is one reproducible schedule (tests/unit/control/schedules.py); the harness checks,
as it runs: election safety (one leader per term), no two leases at once (clocks drift within
the bound), log matching, leader completeness, state-machine safety (one entry per index on
every node), every commit held by a majority, no commit of entries a minority appended, then
liveness once the faults stop. A failing seed prints its schedule. Some schedules also promote
and demote members through the log while the faults go on.
"""

from __future__ import annotations

import pytest

from meshkp.control.raft.types import Role
from tests.unit.control.schedules import run_schedule
from tests.unit.control.simcluster import Cluster

# The default suite runs a few dozen schedules (~3 s); `-m slow` runs thousands.
QUICK_SEEDS = range(40)
SLOW_SEEDS = range(1000, 3000)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
def test_a_schedule_keeps_every_safety_property(seed: int) -> None:
    run_schedule(seed)


# Seeds whose schedule does change the membership (3, 10 and 15 never find a leased leader
# when they try).
MEMBERSHIP_SEEDS = [seed for seed in range(18) if seed not in (3, 10, 15)]


@pytest.mark.parametrize("seed", MEMBERSHIP_SEEDS)
def test_membership_changes_under_faults_keep_every_safety_property(seed: int) -> None:
    cluster = run_schedule(seed, membership=True)
    assert any("promote" in line or "demote" in line for line in cluster.schedule)


def test_leaders_crashing_between_their_early_appends_and_their_write_keep_safety() -> None:
    # A leader sends its appends before its own write (Ready.early); one that crashes in
    # between lost entries its followers may hold: none of them may count as committed.
    torn = 0
    for seed in range(20):
        cluster = run_schedule(seed, torn_writes=0.05)
        torn += sum("before its write" in line for line in cluster.schedule)
    assert torn >= 20  # the schedules did tear writes


@pytest.mark.slow
@pytest.mark.timeout(3600)  # ~4,000 schedules: minutes on a loaded machine
def test_thousands_of_schedules_keep_every_safety_property() -> None:
    for seed in SLOW_SEEDS:
        run_schedule(seed, duration=20.0)
        run_schedule(seed, membership=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_thousands_of_schedules_with_torn_leader_writes_keep_every_safety_property() -> None:
    for seed in SLOW_SEEDS:
        run_schedule(seed, torn_writes=0.02)


def test_a_new_leader_within_3_s_of_a_leader_crash() -> None:
    worst = 0.0
    for seed in range(20):
        cluster = Cluster(seed, [f"n{i}" for i in range(5)])
        leader = cluster.run_until_leader(5.0)
        assert leader is not None
        cluster.run_until(cluster.now + 1.0)
        cluster.crash(leader)
        crashed_at = cluster.now
        new = cluster.run_until_leader(3.0, step=0.005)
        assert new is not None and new != leader, f"seed {seed}: no leader 3 s after the crash"
        worst = max(worst, cluster.now - crashed_at)
    assert worst < 3.0


def test_a_leader_once_a_majority_is_connected() -> None:
    for seed in range(10):
        cluster = Cluster(seed, [f"n{i}" for i in range(5)])
        for node_id in ("n0", "n1", "n2"):
            cluster.crash(node_id)
        assert cluster.run_until_leader(5.0) is None  # 2 of 5: no leader, ever
        cluster.restart("n0")
        assert cluster.run_until_leader(3.0) is not None, f"seed {seed}"


def test_entries_a_minority_leader_appends_are_never_applied() -> None:
    cluster = Cluster(3, [f"n{i}" for i in range(5)])
    applied: list[bytes] = []
    cluster.on_apply = lambda node, entry: applied.append(entry.data)
    leader = cluster.run_until_leader(5.0)
    assert leader is not None
    cluster.run_until(cluster.now + 0.5)
    follower = next(i for i in cluster.nodes if i != leader)
    cluster.partition({leader, follower})
    commit = cluster.nodes[leader].core.commit
    for n in range(5):
        assert cluster.propose(f"minority-{n}".encode())
    cluster.run_until(cluster.now + 0.5)
    assert cluster.nodes[leader].core.commit == commit  # the checker also guards this
    cluster.run_until(cluster.now + 3.0)
    assert cluster.nodes[leader].core.role is not Role.LEADER  # CheckQuorum
    cluster.heal()
    assert cluster.run_until_leader(5.0) is not None
    cluster.propose(b"after")
    cluster.run_until(cluster.now + 2.0)
    assert cluster.converged()
    assert b"after" in applied
    assert not any(data.startswith(b"minority") for data in applied)
    for node in cluster.nodes.values():
        assert not any(e.data.startswith(b"minority") for e in node.core.entries(1))
