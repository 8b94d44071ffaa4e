"""Autopilot: dead voters replaced by caught-up learners, up to max_voters; newcomers added."""

from __future__ import annotations

from meshkp.control.autopilot import Health, next_change
from meshkp.control.raft.membership import ChangeOp, MembershipChange
from meshkp.control.raft.types import Role
from tests.unit.control.helpers import CONFIG, Net, fast

ALIVE = Health(True, 0.0)


def _dead(since: float) -> Health:
    return Health(False, since)


def test_a_seven_node_mesh_keeps_five_voters_and_replaces_a_dead_one() -> None:
    net = Net(["a", "b", "c"], learners=["d", "e", "f", "g"])
    leader = net.elect()
    health = {n: ALIVE for n in net.cores}
    net.advance(CONFIG.learner_stable_time + 0.5)
    # Promotions until five voters, one at a time.
    for _ in range(10):
        c = net.cores[leader]
        change = next_change(CONFIG, c.status(net.now), health, net.now)
        if change is None:
            break
        assert change.op is ChangeOp.PROMOTE
        c.propose_change(net.now, change)
        net.advance(0.3)
    assert len(net.cores[leader].configuration.voters) == 5
    # A voter dies: nothing before the delay, then it is demoted and a learner promoted.
    victim = sorted(net.cores[leader].configuration.voters - {leader})[0]
    net.down = {victim}
    health[victim] = _dead(net.now)
    c = net.cores[leader]
    assert next_change(CONFIG, c.status(net.now), health, net.now + 1.0) is None
    later = net.now + CONFIG.dead_voter_replace_after
    assert next_change(CONFIG, c.status(net.now), health, later) == MembershipChange(ChangeOp.DEMOTE, victim)
    c.propose_change(net.now, MembershipChange(ChangeOp.DEMOTE, victim))
    net.advance(0.3)
    change = next_change(CONFIG, c.status(net.now), health, later)
    assert change is not None and change.op is ChangeOp.PROMOTE and change.node != victim
    c.propose_change(net.now, change)
    net.advance(0.3)
    assert len(c.configuration.voters) == 5 and victim in c.configuration.learners


def test_a_dead_voter_stays_when_no_learner_can_replace_it() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    victim = next(n for n in net.cores if n != leader)
    health = {n: ALIVE for n in net.cores} | {victim: _dead(0.0)}
    status = net.cores[leader].status(net.now)
    assert next_change(CONFIG, status, health, 1e6) is None


def test_newcomers_are_added_as_learners_and_removed_ids_are_not() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.ADD_LEARNER, "gone"))
    net.advance(0.3)
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.REMOVE, "gone"))
    net.advance(0.3)
    status = net.cores[leader].status(net.now)
    health = {n: ALIVE for n in net.cores} | {"gone": ALIVE, "new": ALIVE}
    assert next_change(CONFIG, status, health, net.now) == MembershipChange(ChangeOp.ADD_LEARNER, "new")
    del health["new"]
    assert next_change(CONFIG, status, health, net.now) is None


def test_a_lagging_or_unstable_learner_is_not_promoted() -> None:
    config = fast(promote_max_lag=2)
    net = Net(["a", "b", "c"], learners=["l"], config=config)
    leader = net.elect()
    net.down = {"l"}
    for n in range(5):
        net.cores[leader].propose(net.now, f"{n}".encode())
    net.advance(0.2)
    status = net.cores[leader].status(net.now)
    assert next_change(config, status, {"l": ALIVE}, 100.0) is None  # behind
    net.down = set()
    net.advance(0.5)
    status = net.cores[leader].status(net.now)
    assert next_change(config, status, {"l": Health(True, 99.0)}, 100.0) is None  # not stable yet
    promote = MembershipChange(ChangeOp.PROMOTE, "l")
    assert next_change(config, status, {"l": Health(True, 0.0)}, 100.0) == promote
    follower = net.cores[next(n for n in net.cores if n not in (leader, "l"))]
    assert follower.role is Role.FOLLOWER
    assert next_change(config, follower.status(net.now), {"l": ALIVE}, 100.0) is None  # leader only
