"""Log replication and commit, rule by rule: the no-op, current-term commit, repair, snapshots."""

from __future__ import annotations

import pytest

from meshkp.control.raft.messages import AppendEntries, AppendResponse, InstallSnapshot, VoteResponse
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored, Role
from meshkp.errors import InvalidCommand, NotLeader, ProposalRefused
from tests.unit.control.helpers import CONFIG, Net, core, drain, fast, founding, messages


def _leader_with_old_entry() -> tuple[str, object]:
    # "a" holds entry 2 of term 2 (never committed), then wins term 4.
    base = founding(["a", "b", "c"])
    restored = Restored(HardState(3, "", 1),
                        entries=(*base.entries, Entry(2, 2, EntryKind.COMMAND, b"old")))
    c = core("a", restored)
    now = CONFIG.election_timeout_max
    c.tick(now)
    c.handle(now, "b", VoteResponse(4, True, True))
    c.handle(now, "b", VoteResponse(4, True, False))
    assert c.role is Role.LEADER and c.term == 4
    drain(c)
    return "a", c


def test_a_new_leader_opens_its_term_with_a_noop() -> None:
    _, c = _leader_with_old_entry()
    (last,) = c.entries(c.last_index)
    assert (last.index, last.term, last.kind) == (3, 4, EntryKind.NOOP)


def test_an_older_term_entry_is_not_committed_by_counting_replicas() -> None:
    # Raft §5.4.2 (Figure 8): a majority holding entry 2 of term 2 does not commit it; only a
    # majority holding an entry of the leader's term (its no-op at 3) commits both.
    _, c = _leader_with_old_entry()
    now = CONFIG.election_timeout_max
    c.handle(now, "b", AppendResponse(4, True, 2, now))
    drain(c)
    assert c.commit == 1
    c.handle(now, "b", AppendResponse(4, True, 3, now))
    (ready,) = drain(c)
    assert c.commit == 3
    assert [e.index for e in ready.committed] == [2, 3]


def test_commit_needs_a_majority_of_voters() -> None:
    net = Net(["a", "b", "c", "d", "e"])
    leader = net.elect()
    others = [i for i in net.cores if i != leader]
    reach = set(others[:1])  # the leader and one follower: 2 of 5
    net.drop = lambda src, dst, m: (leader in (src, dst)) and not ({src, dst} - {leader}) <= reach
    commit = net.cores[leader].commit
    token = net.cores[leader].propose(net.now, b"x")
    net.advance(0.5)
    assert net.cores[leader].commit == commit
    reach.add(others[1])  # 3 of 5
    net.advance(0.3)
    assert net.cores[leader].commit >= token.index


def test_a_follower_with_a_conflicting_suffix_is_repaired() -> None:
    net = Net(["a", "b", "c"])
    old = net.elect()
    # The old leader appends entries nobody else receives, then loses its leadership.
    net.drop = lambda src, dst, m: old in (src, dst)
    for n in range(3):
        net.cores[old].propose(net.now, f"lost-{n}".encode())
    net.pump()
    lost_at = net.cores[old].last_index
    net.advance(4.0)
    new = net.leader()
    assert new is not None and new != old
    for n in range(5):
        net.cores[new].propose(net.now, f"kept-{n}".encode())
    net.drop = lambda src, dst, m: False
    net.advance(2.0)
    logs = {i: [(e.index, e.term, e.data) for e in c.entries(1)] for i, c in net.cores.items()}
    assert logs[old] == logs[new]
    assert all(not e.data.startswith(b"lost") for e in net.applied[old])
    assert net.cores[old].last_index >= lost_at


def test_the_follower_ready_replaces_the_conflicting_suffix() -> None:
    base = founding(["a", "b", "c"])
    restored = Restored(HardState(2, "", 1), entries=(*base.entries, Entry(2, 2, EntryKind.COMMAND, b"x"),
                                                      Entry(3, 2, EntryKind.COMMAND, b"y")))
    f = core("b", restored)
    f.handle(0.0, "a", AppendEntries(3, 1, 1, (Entry(2, 3, EntryKind.NOOP),), 1, 0.0))
    (ready,) = drain(f)
    assert [(e.index, e.term) for e in ready.entries] == [(2, 3)]  # storage drops 2.. first
    assert f.last_index == 2


def test_fencing_tokens_grow_on_every_node_across_leader_changes() -> None:
    net = Net(["a", "b", "c"])
    for round_ in range(4):
        leader = net.elect()
        for n in range(3):
            net.cores[leader].propose(net.now, f"{round_}-{n}".encode())
        net.advance(0.3)
        net.down = {leader}
        net.advance(3.0)
        net.down = set()
    net.advance(3.0)
    for node_id, applied in net.applied.items():
        tokens = [e.token for e in applied]
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), node_id
        assert len({t.term for t in tokens}) >= 3


def test_a_far_behind_follower_installs_a_snapshot() -> None:
    config = fast(snapshot_threshold=10, snapshot_trailing_entries=2)
    net = Net(["a", "b", "c"], config=config)
    leader = net.elect()
    behind = next(i for i in net.cores if i != leader)
    net.down = {behind}
    for n in range(30):
        net.cores[leader].propose(net.now, f"e{n}".encode())
        net.pump()
    assert net.cores[leader].snapshot is not None
    assert net.cores[leader].entries(1)[0].index > 5  # compacted: the follower's next is gone
    sent: list[InstallSnapshot] = []

    def watch(src: str, dst: str, m: object) -> bool:
        if isinstance(m, InstallSnapshot):
            sent.append(m)
        return False

    net.drop = watch
    net.down = set()
    # The first InstallSnapshot went out while the follower was down. Its heartbeat replies
    # show it lacks it, so the leader resends, once, an election timeout after the first.
    net.advance(CONFIG.election_timeout_min + 0.5)
    assert len(sent) == 1
    f = net.cores[behind]
    assert f.snapshot is not None and f.snapshot.index == sent[0].snapshot.index
    assert f.commit == net.cores[leader].commit and f.applied == f.commit
    # After the snapshot the follower gets the rest by log, in order.
    assert [e.index for e in net.applied[behind]][-1] == f.commit


def test_the_installed_snapshot_comes_before_later_committed_entries() -> None:
    base = founding(["a", "b", "c"])
    f = core("b", base)
    snap = _snapshot(index=20, term=3)
    f.handle(0.0, "a", InstallSnapshot(3, snap, 0.0))
    f.handle(0.0, "a", AppendEntries(3, 20, 3, (Entry(21, 3, EntryKind.NOOP),), 21, 0.0))
    readies = drain(f)
    assert readies[0].snapshot == snap
    committed = [e.index for r in readies for e in r.committed]
    assert committed == [21]
    assert f.applied == 21
    replies = [m.message for m in messages(readies)]
    assert replies[0] == AppendResponse(3, True, 20, 0.0)


def _snapshot(index: int, term: int):  # type: ignore[no-untyped-def]
    from meshkp.control.raft.membership import Configuration
    from meshkp.control.raft.types import Snapshot

    return Snapshot(index, term, Configuration(frozenset({"a", "b", "c"})), b"state")


def test_proposals_on_a_follower_name_the_leader() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    follower = next(i for i in net.cores if i != leader)
    with pytest.raises(NotLeader) as caught:
        net.cores[follower].propose(net.now, b"x")
    assert caught.value.leader == leader


def test_proposals_are_bounded_in_size_and_backlog() -> None:
    config = fast(max_uncommitted_entries=3)
    net = Net(["a", "b", "c"], config=config)
    leader = net.elect()
    c = net.cores[leader]
    with pytest.raises(InvalidCommand):
        c.propose(net.now, bytes(config.max_entry_bytes + 1))
    net.down = {i for i in net.cores if i != leader}
    for _ in range(3):
        c.propose(net.now, b"x")
    with pytest.raises(ProposalRefused):
        c.propose(net.now, b"x")


def test_pipelining_is_bounded_by_max_inflight() -> None:
    config = fast(max_inflight_appends=2)
    net = Net(["a", "b", "c"], config=config)
    leader = net.elect()
    c = net.cores[leader]
    held: dict[str, int] = {}

    def hold(src: str, dst: str, m: object) -> bool:
        if src == leader and isinstance(m, AppendEntries) and m.entries:
            held[dst] = held.get(dst, 0) + 1
            return True
        return False

    net.drop = hold
    for n in range(6):
        c.propose(net.now, f"{n}".encode())
        net.pump()
    # No reply came back: each follower was sent at most max_inflight appends with entries.
    assert held and max(held.values()) == config.max_inflight_appends


def test_the_leader_sends_its_entries_before_its_write_but_counts_them_only_once_written() -> None:
    # Raft thesis §10.2.1: a leader's appends may leave before its own write (Ready.early); the
    # commit then needs a majority of DURABLE copies, the leader's counting only once written.
    _, c = _leader_with_old_entry()  # "a" leads term 4 over "a", "b", "c"; its no-op is at 3
    now = CONFIG.election_timeout_max
    for peer in ("b", "c"):
        c.handle(now, peer, AppendResponse(4, True, 3, now))
    drain(c)
    assert c.commit == 3
    token = c.propose(now, b"x")
    ready = c.ready()
    assert [e.index for e in ready.entries] == [token.index]
    early = ready.messages[:ready.early]
    assert {m.to for m in early} == {"b", "c"}
    assert all(isinstance(m.message, AppendEntries) and m.message.entries for m in early)
    c.handle(now, "b", AppendResponse(4, True, token.index, now))  # one durable copy of three
    assert c.commit == 3
    c.advance(ready)  # the leader's own write is done: two of three
    assert c.commit == token.index


def test_a_new_term_or_vote_not_yet_written_holds_every_message_back() -> None:
    # A sole voter wins at once: its appends to a learner must wait for its new term's write.
    c = core("a", founding(["a"], ["l"]))
    c.tick(0.0)
    assert c.role is Role.LEADER
    ready = c.ready()
    assert ready.hard_state is not None and ready.must_sync
    assert ready.early == 0 and any(m.to == "l" for m in ready.messages)


def test_the_commit_notice_asks_no_reply_from_a_follower_that_keeps_up() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    net.advance(0.2)
    sent: list[tuple[str, str, object]] = []

    def record(src: str, dst: str, m: object) -> bool:
        sent.append((src, dst, m))
        return False

    net.drop = record
    token = net.cores[leader].propose(net.now, b"x")
    net.pump()
    appends = [(dst, m) for src, dst, m in sent if isinstance(m, AppendEntries)]
    notices = [(dst, m) for dst, m in appends if not m.ack]
    assert {dst for dst, _ in notices} == set(net.cores) - {leader}
    assert all(not m.entries and m.commit >= token.index for _, m in notices)
    replies = [m for src, _dst, m in sent if isinstance(m, AppendResponse)]
    assert len(replies) == len(appends) - len(notices)  # one reply per append that asked for one
    assert all(c.commit >= token.index for c in net.cores.values())


def test_a_notice_that_does_not_match_is_answered() -> None:
    follower = core("b", founding(["a", "b"]))
    follower.handle(0.0, "a", AppendEntries(2, 1, 1, (), 1, 0.0, ack=False))  # matches: silence
    assert messages(drain(follower)) == []
    follower.handle(0.0, "a", AppendEntries(2, 5, 2, (), 5, 0.0, ack=False))  # it lacks entry 5
    (out,) = messages(drain(follower))
    assert isinstance(out.message, AppendResponse) and not out.message.success


def test_a_follower_that_forgot_its_log_is_sent_it_again_by_the_same_leader() -> None:
    net = Net(["a", "b", "c"])
    leader = net.elect()
    token = net.cores[leader].propose(net.now, b"x")
    net.advance(0.3)
    follower = sorted(set(net.cores) - {leader})[0]
    old = net.cores[follower]
    assert old.commit >= token.index
    # `meshkp recover --rejoin`: the log is gone, term kept; the leader still has it at `match`.
    net.cores[follower] = core(follower, Restored(HardState(old.term, "", 0)), net.now)
    net.advance(CONFIG.election_timeout_max)
    again = net.cores[follower]
    assert net.leader() == leader  # the same leader, whose progress said it held the entries
    assert again.commit >= token.index and again.entries(1) == net.cores[leader].entries(1, again.last_index)


def test_a_forked_follower_acknowledges_only_what_matched_not_its_commit() -> None:
    # b committed entry 2 of term 1 that the leader never had; the leader's entry 2 is of term 5.
    base = founding(["a", "b"])
    only_b = Entry(2, 1, EntryKind.COMMAND, b"b")
    b = core("b", Restored(HardState(1, "", 2), entries=(*base.entries, only_b)))
    b.handle(0.0, "a", AppendEntries(6, 1, 1, (), 3, 0.0))  # a heartbeat from the common prefix
    (out,) = messages(drain(b))
    assert isinstance(out.message, AppendResponse) and out.message.success
    assert out.message.index == 1  # not 2: its entry 2 is not the leader's
