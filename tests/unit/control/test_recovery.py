"""Forced recovery (raft/recovery.py): a survivor of a lost majority leads again, stale voters follow.

Five cores on the hand-driven Net; three are stopped for good, so the two left cannot commit.
One survivor's disk gets the recovery entry; restarted from it, it elects itself, commits, and
the other survivor and a restarted stale voter take the new configuration from its log. A voter
whose committed log forked from the recovered one refuses the leader's entries (it never
merges a different history silently) and never leads.
"""

from __future__ import annotations

import msgpack
import pytest

from meshkp.control.policy.apply import apply_entry
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.membership import ChangeOp, ConfigChange, MembershipChange, changed
from meshkp.control.raft.recovery import RECOVERY_TERM_GAP, force_configuration, latest_configuration
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored, Role
from meshkp.errors import InvalidCommand, NotLeader
from tests.unit.control.helpers import CONFIG, Net, core, founding

VOTERS = ["a", "b", "c", "d", "e"]


def disk(c: RaftCore) -> Restored:
    """What a driver would have persisted for `c` (nothing is compacted in these tests)."""
    return Restored(HardState(c.term, "", c.commit), entries=tuple(c.entries(1)))


def recovered(restored: Restored, node: str, *voters: str) -> Restored:
    r = force_configuration(restored, node, voters)
    return Restored(r.hard_state, restored.snapshot, restored.base_index, restored.base_term,
                    (*restored.entries, r.entry))


def _lost_majority() -> Net:
    net = Net(VOTERS)
    leader = net.elect()
    for n in range(3):
        net.cores[leader].propose(net.now, f"cmd{n}".encode())
    net.advance(0.2)
    net.down = {leader, *sorted(set(VOTERS) - {leader})[:2]}  # the leader and two more, for good
    net.advance(CONFIG.election_timeout_max * 3)
    return net


def test_the_survivor_elects_itself_and_commits_and_the_other_survivor_follows() -> None:
    net = _lost_majority()
    survivors = sorted(set(VOTERS) - net.down)
    assert net.leader() is None
    with pytest.raises(NotLeader):
        net.cores[survivors[0]].propose(net.now, b"refused")  # no leader among two of five
    kept = net.cores[survivors[0]]
    before = disk(kept)
    net.cores[survivors[0]] = core(survivors[0], recovered(before, survivors[0]), net.now, seed=7)
    leader = net.elect()
    assert leader == survivors[0]
    new = net.cores[leader]
    assert new.term > before.hard_state.term + RECOVERY_TERM_GAP
    assert new.configuration.voters == {leader}
    assert new.configuration.learners == set(VOTERS) - {leader}
    token = new.propose(net.now, b"after")
    net.advance(0.5)
    assert new.commit >= token.index
    other = net.cores[survivors[1]]
    assert other.commit >= token.index and other.configuration == new.configuration
    assert [e.data for e in other.entries(1, token.index)] == [e.data for e in new.entries(1, token.index)]
    # Every entry the survivor held is still there, the old ones first, in their order.
    assert new.entries(1, before.entries[-1].index) == list(before.entries)


def test_a_stale_voter_restarted_with_its_old_state_follows_and_never_leads() -> None:
    net = _lost_majority()
    survivor = sorted(set(VOTERS) - net.down)[0]
    stale_id = sorted(net.down)[0]
    stale_disk = disk(net.cores[stale_id])
    net.cores[survivor] = core(survivor, recovered(disk(net.cores[survivor]), survivor), net.now)
    leader = net.elect()
    net.cores[stale_id] = core(stale_id, stale_disk, net.now)  # back, with what it had
    net.down.discard(stale_id)
    net.advance(CONFIG.election_timeout_max * 3)
    stale = net.cores[stale_id]
    assert net.leader() == leader and stale.role is Role.FOLLOWER and stale.leader == leader
    assert stale.configuration == net.cores[leader].configuration
    assert stale_id in stale.configuration.learners


def test_a_voter_whose_committed_log_forked_refuses_the_recovered_log() -> None:
    # "b" committed an entry at index 3 that "a" never received; "a" is recovered on its own.
    base = founding(["a", "b", "c"])
    shared = (*base.entries, Entry(2, 2, EntryKind.NOOP))
    a_disk = Restored(HardState(2, "", 2), entries=shared)
    b_disk = Restored(HardState(3, "", 3), entries=(*shared, Entry(3, 3, EntryKind.COMMAND, b"only-b")))
    net = Net(["a", "b", "c"])
    net.cores = {"a": core("a", recovered(a_disk, "a")), "b": core("b", b_disk)}
    net.applied = {"a": [], "b": []}
    net.advance(CONFIG.election_timeout_max * 3)
    a, b = net.cores["a"], net.cores["b"]
    assert a.role is Role.LEADER and b.role is Role.FOLLOWER and b.leader == "a"
    assert b.entries(3) == [Entry(3, 3, EntryKind.COMMAND, b"only-b")]  # nothing overwritten
    assert b.configuration.voters == {"a", "b", "c"}


def test_the_refusals_name_what_is_wrong() -> None:
    state = founding(["a", "b"], ["l"])
    with pytest.raises(InvalidCommand, match="nothing to recover"):
        force_configuration(Restored(), "a")
    with pytest.raises(InvalidCommand, match="node z is not a member"):
        force_configuration(state, "z")
    with pytest.raises(InvalidCommand, match="node q is not a member"):
        force_configuration(state, "a", ["q"])
    after_removal = changed(latest_configuration(state), MembershipChange(ChangeOp.REMOVE, "b"), 5)
    removed = ConfigChange(MembershipChange(ChangeOp.REMOVE, "b"), after_removal).encode()
    gone = Restored(state.hard_state, entries=(*state.entries, Entry(2, 1, EntryKind.CONFIG, removed)))
    with pytest.raises(InvalidCommand, match="removed for good"):
        force_configuration(gone, "a", ["b"])
    with pytest.raises(InvalidCommand, match="cannot be proposed"):
        changed(latest_configuration(state), MembershipChange(ChangeOp.RECOVER, "a"), 5)


def test_named_voters_and_learners_and_the_audit_entry() -> None:
    state = founding(["a", "b", "c"], ["l"])
    r = force_configuration(state, "a", ["b"], hlc=5 << 16)
    assert (r.after.voters, r.after.learners) == ({"a", "b"}, {"c", "l"})
    assert r.entry.index == 2 and r.hard_state.commit == 2 and r.entry.term == 1 + RECOVERY_TERM_GAP
    applied = apply_entry(apply_entry(PolicyState(), state.entries[0]).state, r.entry)
    audit = applied.audit
    assert audit is not None and audit.actor == "meshkp recover" and audit.node == "a"
    assert "forced recovery" in audit.detail and "voters a, b; learners c, l" in audit.detail
    decoded = msgpack.unpackb(r.entry.data)
    assert decoded["op"] == int(ChangeOp.RECOVER)


def test_a_named_voter_that_was_not_recovered_votes_and_takes_the_new_configuration() -> None:
    net = _lost_majority()
    first, second = sorted(set(VOTERS) - net.down)
    net.cores[first] = core(first, recovered(disk(net.cores[first]), first, second), net.now)
    leader = net.elect()
    assert leader == first  # it needed the vote of `second`, which still had the old configuration
    new = net.cores[leader].configuration
    assert new.voters == {first, second}
    net.advance(0.5)
    assert net.cores[second].configuration == new
    token = net.cores[leader].propose(net.now, b"two of two")
    net.advance(0.5)
    assert net.cores[second].commit >= token.index
