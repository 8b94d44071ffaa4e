"""CheckQuorum, the leader lease and the clock-drift bound it rests on."""

from __future__ import annotations

import pytest

from meshkp.control.raft.types import Role
from tests.unit.control.helpers import CONFIG, Net, fast
from tests.unit.control.simcluster import Cluster, SafetyViolation


def test_a_leader_cut_off_from_its_majority_steps_down_within_an_election_timeout() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.drop = lambda src, dst, m: leader in (src, dst)
    cut_at = net.now
    while net.cores[leader].role is Role.LEADER:
        net.advance(0.01)
        assert net.now - cut_at < CONFIG.election_timeout_min + CONFIG.heartbeat_interval + 0.05
    assert net.now - cut_at >= CONFIG.election_timeout_min - CONFIG.heartbeat_interval


def test_the_lease_lapses_lease_duration_after_the_last_acknowledged_heartbeat() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    c = net.cores[leader]
    net.advance(1.0)
    assert c.lease_remaining(net.now) > CONFIG.lease_duration - 2 * CONFIG.heartbeat_interval
    net.drop = lambda src, dst, m: leader in (src, dst)
    cut_at = net.now
    net.advance(CONFIG.lease_duration - 2 * CONFIG.heartbeat_interval)
    assert c.is_leader_with_lease(net.now)  # still covered by what was acknowledged
    net.advance(2 * CONFIG.heartbeat_interval + 0.02)
    assert not c.is_leader_with_lease(net.now)
    assert c.role is Role.LEADER  # it does not know yet that it is cut off
    assert net.now - cut_at < CONFIG.election_timeout_min


def test_a_new_leader_holds_no_lease_before_its_noop_commits() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.down = {leader}
    # The others elect a new leader, but it cannot commit while its votes' replies are held.
    held = {"on": True}
    net.drop = lambda src, dst, m: held["on"] and type(m).__name__ == "AppendResponse"
    while not any(c.role is Role.LEADER for i, c in net.cores.items() if i != leader):
        net.advance(0.01)
        assert net.now < 10.0
    new = next(i for i, c in net.cores.items() if c.role is Role.LEADER and i != leader)
    net.advance(0.3)
    assert net.cores[new].role is Role.LEADER
    assert not net.cores[new].is_leader_with_lease(net.now)
    assert net.cores[new].read_index(net.now) is None
    held["on"] = False
    net.advance(0.3)
    assert net.cores[new].is_leader_with_lease(net.now)
    assert net.cores[new].read_index(net.now) == net.cores[new].commit


def test_leases_never_overlap_at_the_drift_bound() -> None:
    # The leader's clock runs slow and the followers' fast, both at the bound; the leader is
    # cut off. The new leader is elected only after the old lease ended, in real time.
    for seed in range(20):
        cluster = Cluster(seed, ["a", "b", "c"], drift=False)
        ratio = CONFIG.max_clock_drift / CONFIG.election_timeout_min
        rho = ratio / (2 - ratio)
        leader = cluster.run_until_leader(5.0)
        assert leader is not None
        cluster.run_until(cluster.now + 1.0)
        slow = cluster.nodes[leader]
        # Re-anchor the clocks so they stay continuous while their rates change.
        for node in cluster.nodes.values():
            local = node.local(cluster.now)
            node.rate = (1 - rho) if node.id == leader else (1 + rho)
            node.offset = local - node.rate * cluster.now
        cluster.partition({leader})
        old_lease_end = None
        while cluster.now < 10.0:
            cluster.run_until(cluster.now + 0.001)  # checks "never two leases" at every step
            if old_lease_end is None and not slow.core.is_leader_with_lease(slow.local(cluster.now)):
                old_lease_end = cluster.now
            others = [n for n in cluster.nodes.values() if n.id != leader and n.core.role is Role.LEADER]
            if others:
                assert old_lease_end is not None and old_lease_end <= cluster.now
                break
        else:
            raise AssertionError("no new leader")


def test_beyond_the_drift_bound_two_leases_can_overlap() -> None:
    # What the bound buys: with the leader's clock at half speed (far beyond it), the cut-off
    # leader still believes its lease when the others have elected a new leader. Fencing
    # tokens still order their writes: the new leader's entries carry a higher term.
    cluster = Cluster(7, ["a", "b", "c"], drift=False)
    leader = cluster.run_until_leader(5.0)
    assert leader is not None
    cluster.run_until(cluster.now + 1.0)
    slow = cluster.nodes[leader]
    local = slow.local(cluster.now)
    slow.rate = 0.3
    slow.offset = local - slow.rate * cluster.now
    cluster.partition({leader})
    with pytest.raises(SafetyViolation, match="two leaders hold a lease"):
        cluster.run_until(cluster.now + 5.0)
    new = next(n for n in cluster.nodes.values() if n.id != leader and n.core.role is Role.LEADER)
    assert new.core.term > slow.core.term


def test_lease_config_must_respect_the_drift_bound() -> None:
    from meshkp.errors import ConfigError

    with pytest.raises(ConfigError, match="lease_duration"):
        fast(lease_duration=0.95)
    with pytest.raises(ConfigError, match="lease_duration"):
        fast(max_clock_drift=0.25)  # 0.8 >= 1.0 - 0.25
