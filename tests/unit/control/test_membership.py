"""Voters and learners: one change at a time through the log, promotion, removal for good."""

from __future__ import annotations

import pytest

from meshkp.control.raft.membership import (
    ChangeOp,
    ConfigChange,
    Configuration,
    MembershipChange,
    changed,
)
from meshkp.control.raft.messages import AppendResponse, VoteRequest
from meshkp.control.raft.types import Restored, Role
from meshkp.errors import InvalidCommand, ProposalRefused, WireError
from tests.unit.control.helpers import CONFIG, Net, core, drain, fast, messages


def _net_with_newcomer(voters: list[str], newcomer: str = "n", **config: object) -> Net:
    net = Net(voters, config=fast(**config) if config else CONFIG)
    net.cores[newcomer] = core(newcomer, Restored(), 0.0, net.config)
    net.applied[newcomer] = []
    return net


def _change(net: Net, op: ChangeOp, node: str) -> None:
    leader = net.elect()
    net.cores[leader].propose_change(net.now, MembershipChange(op, node), actor="op")
    net.advance(0.3)


def test_changes_are_checked_before_they_are_proposed() -> None:
    cfg = Configuration(frozenset({"a", "b"}), frozenset({"l"}), ("gone",))
    cases = [
        (ChangeOp.ADD_LEARNER, "a", "already a member"),
        (ChangeOp.ADD_LEARNER, "gone", "removed for good"),
        (ChangeOp.PROMOTE, "b", "not a learner"),
        (ChangeOp.DEMOTE, "l", "not a voter"),
        (ChangeOp.REMOVE, "x", "not a member"),
        (ChangeOp.BOOTSTRAP, "a", "bootstrapped once"),
    ]
    for op, node, message in cases:
        with pytest.raises(InvalidCommand, match=message):
            changed(cfg, MembershipChange(op, node), max_voters=5)
    with pytest.raises(InvalidCommand, match="max_voters"):
        changed(cfg, MembershipChange(ChangeOp.PROMOTE, "l"), max_voters=2)
    with pytest.raises(InvalidCommand, match="last voter"):
        changed(Configuration(frozenset({"a"})), MembershipChange(ChangeOp.REMOVE, "a"), max_voters=5)


def test_config_entries_round_trip_and_refuse_garbage() -> None:
    change = ConfigChange(MembershipChange(ChangeOp.PROMOTE, "l"),
                          Configuration(frozenset({"a", "l"}), frozenset(), ("x",)), "alice", "a", 7)
    assert ConfigChange.decode(change.encode()) == change
    for bad in (b"", b"\xc1", b"\x90"):
        with pytest.raises(WireError):
            ConfigChange.decode(bad)


def test_a_learner_is_added_through_the_log_and_catches_up() -> None:
    net = _net_with_newcomer(["a", "b", "c"])
    _change(net, ChangeOp.ADD_LEARNER, "n")
    leader = net.elect()
    for c in net.cores.values():
        assert "n" in c.configuration.learners
    assert net.cores["n"].commit == net.cores[leader].commit
    assert net.cores["n"].leader == leader


def test_a_learner_is_promoted_only_once_caught_up() -> None:
    net = _net_with_newcomer(["a", "b", "c"], promote_max_lag=4)
    _change(net, ChangeOp.ADD_LEARNER, "n")
    leader = net.elect()
    net.down = {"n"}
    for k in range(10):
        net.cores[leader].propose(net.now, f"{k}".encode())
    net.advance(0.2)
    with pytest.raises(ProposalRefused, match="entries behind"):
        net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.PROMOTE, "n"))
    net.down = set()
    net.advance(0.5)
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.PROMOTE, "n"))
    net.advance(0.3)
    assert net.cores[leader].configuration.voters == {"a", "b", "c", "n"}
    # Four voters: a commit needs three of them.
    net.down = {v for v in ("a", "b", "c") if v != leader} - {sorted({"a", "b", "c"} - {leader})[0]}
    commit = net.cores[leader].commit
    net.cores[leader].propose(net.now, b"needs-three")
    net.advance(0.3)
    assert net.cores[leader].commit > commit  # leader + one old voter + n


def test_one_change_at_a_time() -> None:
    net = _net_with_newcomer(["a", "b", "c"])
    leader = net.elect()
    net.drop = lambda src, dst, m: isinstance(m, AppendResponse)  # nothing commits
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.ADD_LEARNER, "n"))
    with pytest.raises(ProposalRefused, match="one change at a time"):
        net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.DEMOTE, "b"))


def test_a_new_leader_changes_nothing_before_its_noop_commits() -> None:
    net = _net_with_newcomer(["a", "b", "c"])
    old = net.elect()
    net.down = {old}
    net.drop = lambda src, dst, m: isinstance(m, AppendResponse)
    while not any(c.role is Role.LEADER for i, c in net.cores.items() if i != old):
        net.advance(0.01)
    new = next(i for i, c in net.cores.items() if c.role is Role.LEADER and i != old)
    with pytest.raises(ProposalRefused, match="not committed an entry of its term"):
        net.cores[new].propose_change(net.now, MembershipChange(ChangeOp.ADD_LEARNER, "n"))


def test_a_demoted_voter_stops_counting() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    victim = next(i for i in net.cores if i != leader)
    _change(net, ChangeOp.DEMOTE, victim)
    assert net.cores[leader].configuration.voters == {"a", "b", "c"} - {victim}
    # Two voters left: commit needs both; the learner's acks do not count.
    other = next(i for i in net.cores if i not in (leader, victim))
    net.down = {other}
    commit = net.cores[leader].commit
    net.cores[leader].propose(net.now, b"x")
    net.advance(0.3)
    assert net.cores[leader].commit == commit


def test_a_removed_member_is_refused_when_it_comes_back() -> None:
    net = Net(["a", "b", "c", "d", "e"])
    leader = net.elect()
    victim = next(i for i in net.cores if i != leader)
    net.down = {victim}  # it misses its own removal
    _change(net, ChangeOp.REMOVE, victim)
    assert victim in net.cores[leader].configuration.removed
    net.down = set()
    net.advance(CONFIG.election_timeout_max * 3)  # no heartbeats reach it: it pre-votes
    assert net.cores[victim].role is Role.REMOVED
    with pytest.raises(ProposalRefused, match="removed"):
        net.cores[victim].propose(net.now, b"x")
    assert net.leader() == leader  # nobody was disturbed


def test_a_member_that_commits_its_own_removal_stops() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    victim = next(i for i in net.cores if i != leader)
    _change(net, ChangeOp.REMOVE, victim)
    net.advance(0.3)
    assert net.cores[victim].role is Role.REMOVED  # told by the leader once it committed
    # Restarted from its disk (which may not hold its removal), it is refused again.
    net.cores[victim] = core(victim, _disk_of(net, victim), net.now)
    net.advance(CONFIG.election_timeout_max * 2)
    assert net.cores[victim].role is Role.REMOVED


def _disk_of(net: Net, node_id: str) -> Restored:
    c = net.cores[node_id]
    from meshkp.control.raft.types import HardState

    return Restored(HardState(c.term, "", c.commit), None, 0, 0, tuple(c.entries(1)))


def test_a_leader_that_removes_itself_steps_down_once_committed() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.REMOVE, leader))
    net.advance(0.3)
    assert net.cores[leader].role is Role.REMOVED
    net.advance(CONFIG.election_timeout_max + 1.0)
    new = net.leader()
    assert new is not None and new != leader
    assert net.cores[new].configuration.voters == {"a", "b", "c"} - {leader}


def test_messages_from_a_removed_id_get_a_refusal() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    victim = next(i for i in net.cores if i != leader)
    _change(net, ChangeOp.REMOVE, victim)
    c = net.cores[leader]
    c.handle(net.now, victim, VoteRequest(99, 99, 99, True))
    (reply,) = messages(drain(c))
    assert reply.to == victim and type(reply.message).__name__ == "Refused"
    assert c.term < 99


def test_a_leader_removing_itself_keeps_leading_until_the_change_commits() -> None:
    # Not a voter any more, it still has its majority's contact: CheckQuorum keeps it, and it
    # holds no lease (it is not among the voters it counts).
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.advance(3.0)  # long after its election
    slow = {"on": True}
    net.drop = lambda src, dst, m: slow["on"] and src == leader and bool(getattr(m, "entries", ()))
    net.cores[leader].propose_change(net.now, MembershipChange(ChangeOp.DEMOTE, leader))
    net.advance(0.5)  # heartbeats flow, the change itself does not
    c = net.cores[leader]
    assert c.role is Role.LEADER and not c.is_leader_with_lease(net.now)
    slow["on"] = False
    net.advance(0.3)
    assert c.role is Role.FOLLOWER and leader in c.configuration.learners
