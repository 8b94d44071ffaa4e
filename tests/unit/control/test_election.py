"""Elections, rule by rule: PreVote, terms, the up-to-date check, stickiness, learners."""

from __future__ import annotations

from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.messages import AppendEntries, AppendResponse, VoteRequest, VoteResponse
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored, Role
from tests.unit.control.helpers import CONFIG, Net, core, drain, founding, messages


def test_a_sole_voter_elects_itself_at_its_first_tick() -> None:
    c = core("a", bootstrap("a"))
    c.tick(0.0)
    assert c.role is Role.LEADER
    # Its no-op commits (and the lease starts) once the driver reports it written: a leader
    # counts only its durable entries toward commit.
    assert not c.is_leader_with_lease(0.0)
    first, second = drain(c)
    assert [e.kind for e in first.entries] == [EntryKind.NOOP] and first.committed == ()
    assert c.is_leader_with_lease(0.0)
    # The bootstrap config, and the new term's no-op, committed at once after that write.
    assert [e.kind for e in second.committed] == [EntryKind.CONFIG, EntryKind.NOOP]


def test_three_voters_elect_exactly_one_leader_within_the_timeout_range() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect(limit=CONFIG.election_timeout_max + 0.5)
    assert net.now <= CONFIG.election_timeout_max + 0.1
    terms = {c.term for c in net.cores.values()}
    assert terms == {2}  # one election, no split term (PreVote kept others from moving)
    assert all(c.leader == leader for c in net.cores.values())


def test_prevote_does_not_move_the_term() -> None:
    # A voter that cannot reach anyone keeps pre-voting but never bumps its term.
    net = Net(["a", "b", "c"])
    net.elect()
    isolated = next(i for i, c in net.cores.items() if c.role is not Role.LEADER)
    net.drop = lambda src, dst, m: isolated in (src, dst)
    term = net.cores[isolated].term
    net.advance(10 * CONFIG.election_timeout_max)
    assert net.cores[isolated].term == term
    assert net.cores[isolated].role is Role.PRE_CANDIDATE


def test_a_rejoining_partitioned_node_does_not_disrupt_the_leader() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    isolated = next(i for i in net.cores if i != leader)
    net.drop = lambda src, dst, m: isolated in (src, dst)
    net.advance(5.0)
    term = net.cores[leader].term
    net.drop = lambda src, dst, m: False
    net.advance(3.0)
    assert net.leader() == leader
    assert net.cores[leader].term == term  # no election happened


def test_votes_are_refused_while_a_leader_was_heard_recently() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    follower = next(i for i in net.cores if i != leader)
    f = net.cores[follower]
    for pre in (True, False):
        f.handle(net.now, "x", VoteRequest(f.term + 1, 100, 100, pre))
        assert messages(drain(f)) == []  # ignored: no vote, no reply
    assert f.term == net.cores[leader].term


def test_a_stale_term_append_is_refused_with_the_current_term() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    follower = next(i for i in net.cores if i != leader)
    f = net.cores[follower]
    f.handle(net.now, "old", AppendEntries(1, 0, 0, (), 0, net.now))
    (reply,) = messages(drain(f))
    assert reply.to == "old"
    assert isinstance(reply.message, AppendResponse)
    assert not reply.message.success and reply.message.term == f.term


def test_a_stale_leader_steps_down_on_a_higher_term_reply() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    c = net.cores[leader]
    c.handle(net.now, "b" if leader != "b" else "a", AppendResponse(c.term + 5, False, 0, -1.0))
    assert c.role is Role.FOLLOWER and c.term >= 7


def _voter_with_log(last_term: int, last_index: int) -> Restored:
    base = founding(["a", "b", "c"])
    entries = list(base.entries)
    for index in range(2, last_index + 1):
        entries.append(Entry(index, min(last_term, max(1, index - 1)) if index < last_index else last_term,
                             EntryKind.NOOP))
    return Restored(HardState(last_term, "", 0), entries=tuple(entries))


def test_vote_requires_an_up_to_date_log() -> None:
    # Raft §5.4.1: compare last terms, then lengths.
    cases = [
        # (voter last term, voter last index, candidate last term, candidate last index, granted)
        (3, 5, 3, 5, True),
        (3, 5, 3, 6, True),
        (3, 5, 3, 4, False),
        (3, 5, 4, 2, True),
        (3, 5, 2, 9, False),
    ]
    for voter_term, voter_index, cand_term, cand_index, granted in cases:
        v = core("a", _voter_with_log(voter_term, voter_index), now=0.0)
        now = CONFIG.election_timeout_min + 0.01  # past the restart quiet period
        v.handle(now, "b", VoteRequest(voter_term + 1, cand_index, cand_term, False))
        (reply,) = messages(drain(v))
        assert isinstance(reply.message, VoteResponse)
        assert reply.message.granted is granted, (voter_term, voter_index, cand_term, cand_index)


def test_one_vote_per_term_and_it_is_persisted_with_the_reply() -> None:
    v = core("a", founding(["a", "b", "c"]))
    now = CONFIG.election_timeout_min + 0.01
    v.handle(now, "b", VoteRequest(2, 1, 1, False))
    (ready,) = drain(v)
    # The vote and its reply come in one Ready: the driver saves the vote before sending.
    assert ready.hard_state == HardState(2, "b", 0)
    assert ready.messages[0].message == VoteResponse(2, True, False)
    v.handle(now, "c", VoteRequest(2, 1, 1, False))
    (ready,) = drain(v)
    assert ready.messages[0].message == VoteResponse(2, False, False)


def test_a_restarted_voter_keeps_quiet_for_an_election_timeout() -> None:
    # It may have promised a leader its support just before crashing; the lease relies on it.
    restored = Restored(HardState(3, "b", 0), entries=founding(["a", "b", "c"]).entries)
    v = core("a", restored, now=100.0)
    v.handle(100.0 + CONFIG.election_timeout_min / 2, "c", VoteRequest(4, 1, 1, False))
    assert messages(drain(v)) == []
    v.handle(100.0 + CONFIG.election_timeout_min + 0.01, "c", VoteRequest(4, 1, 1, False))
    assert messages(drain(v))[0].message == VoteResponse(4, True, False)


def test_learners_never_campaign_and_their_votes_do_not_count() -> None:
    net = Net(["a", "b", "c"], learners=["l"])
    leader = net.elect()
    assert leader != "l"
    learner = net.cores["l"]
    assert learner.role is Role.FOLLOWER and learner.leader == leader
    # Alone, a learner never starts an election.
    net.down = {"a", "b", "c"}
    net.advance(10.0)
    assert learner.role is Role.FOLLOWER and learner.term == net.cores[leader].term


def test_a_candidate_counts_only_its_voters() -> None:
    c = core("a", founding(["a", "b", "c"]))
    c.tick(CONFIG.election_timeout_max)
    assert c.role is Role.PRE_CANDIDATE
    drain(c)
    c.handle(c_now := CONFIG.election_timeout_max, "l", VoteResponse(c.term + 1, True, True))
    assert c.role is Role.PRE_CANDIDATE  # a vote from a non-voter changes nothing
    c.handle(c_now, "b", VoteResponse(c.term + 1, True, True))
    assert c.role is Role.CANDIDATE


def test_a_majority_of_refusals_ends_the_campaign() -> None:
    c = core("a", founding(["a", "b", "c"]))
    c.tick(CONFIG.election_timeout_max)
    drain(c)
    c.handle(CONFIG.election_timeout_max, "b", VoteResponse(c.term, False, True))
    c.handle(CONFIG.election_timeout_max, "c", VoteResponse(c.term, False, True))
    assert c.role is Role.FOLLOWER
