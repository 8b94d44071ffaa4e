"""The Ready contract: one Ready at a time, what it carries, compaction bounds, restart."""

from __future__ import annotations

import pytest

from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.types import EntryKind, Restored, Role
from meshkp.errors import RaftUsageError
from tests.unit.control.helpers import core, drain, fast


def _leader() -> object:
    c = core("a", bootstrap("a", [b"seed"]))
    c.tick(0.0)
    return c


def test_one_ready_at_a_time() -> None:
    c = _leader()
    ready = c.ready()
    assert not c.has_ready()  # until advance()
    with pytest.raises(RaftUsageError):
        c.ready()
    with pytest.raises(RaftUsageError):
        c.advance(type(ready)(None, None, None, (), (), ()))
    c.advance(ready)
    assert c.has_ready()  # the commit its no-op's write made possible (a leader counts its
    c.advance(c.ready())  # own entries once durable), then nothing
    assert not c.has_ready()


def test_calls_between_ready_and_advance_land_in_the_next_ready() -> None:
    c = _leader()
    first = c.ready()
    token = c.propose(0.1, b"meanwhile")
    c.advance(first)
    second = c.ready()
    assert [e.index for e in second.entries] == [token.index]
    assert [e.data for e in second.committed][-1:] == [b""]  # up to the no-op, written first
    c.advance(second)
    third = c.ready()  # "meanwhile" commits once its own write is reported
    assert [e.data for e in third.committed] == [b"meanwhile"]
    c.advance(third)
    assert c.applied == token.index


def test_the_first_ready_carries_state_to_persist_and_entries_to_apply() -> None:
    c = _leader()
    ready = c.ready()
    assert ready.must_sync
    assert ready.hard_state is not None and ready.hard_state.term == 2 and ready.hard_state.vote == "a"
    assert ready.soft_state is not None and ready.soft_state.role is Role.LEADER
    # Bootstrap entries were stored by bootstrap; only the new no-op is to be appended.
    assert [e.kind for e in ready.entries] == [EntryKind.NOOP]
    assert ready.committed == ()  # the no-op commits once written (the next Ready)
    c.advance(ready)
    assert [e.data for e in c.ready().committed] == [c.entries(1)[0].data, b"seed", b""]


def test_compaction_only_covers_applied_entries() -> None:
    c = _leader()
    drain(c)
    with pytest.raises(RaftUsageError):
        c.compact(c.applied + 1, b"")
    compaction = c.compact(c.applied, b"state")
    assert compaction.snapshot.index == c.applied
    with pytest.raises(RaftUsageError):
        c.compact(c.applied, b"again")


def test_snapshot_due_counts_applied_entries_since_the_last_snapshot() -> None:
    c = core("a", bootstrap("a"), config=fast(snapshot_threshold=5, snapshot_trailing_entries=1))
    c.tick(0.0)
    drain(c)
    while not c.snapshot_due():
        c.propose(0.0, b"x")
        drain(c)
    assert c.applied == 5
    compaction = c.compact(c.applied, b"s")
    assert (compaction.base_index, compaction.snapshot.index) == (4, 5)
    assert not c.snapshot_due()


def test_a_restart_from_what_was_persisted_reapplies_committed_entries() -> None:
    c = _leader()
    readies = drain(c)
    c.propose(0.1, b"one")
    readies += drain(c)
    compaction = c.compact(c.applied, b"snap")
    c.propose(0.2, b"two")
    readies += drain(c)
    hard = [r.hard_state for r in readies if r.hard_state][-1]
    entries = tuple(e for e in c.entries(1) if e.index > compaction.base_index)
    restored = Restored(hard, compaction.snapshot, compaction.base_index, compaction.base_term, entries)
    again = core("a", restored, now=50.0)
    assert again.applied == compaction.snapshot.index  # the driver installs the snapshot itself
    again.tick(50.0)
    committed = [e.data for r in drain(again) for e in r.committed]
    assert committed[0] == b"two"
    assert again.role is Role.LEADER and again.term == 3


def test_only_votes_terms_entries_and_snapshots_need_a_sync() -> None:
    from meshkp.control.raft.messages import AppendEntries, VoteRequest
    from meshkp.control.raft.types import Entry
    from tests.unit.control.helpers import CONFIG, founding

    f = core("b", founding(["a", "b", "c"]))
    now = CONFIG.election_timeout_min + 0.01
    f.handle(now, "a", VoteRequest(2, 1, 1, False))
    (vote,) = drain(f)
    assert vote.must_sync  # a vote must be durable before the reply leaves
    f.handle(now, "a", AppendEntries(2, 1, 1, (Entry(2, 2, EntryKind.NOOP),), 1, now))
    (append,) = drain(f)
    assert append.must_sync and append.entries
    f.handle(now, "a", AppendEntries(2, 2, 2, (), 2, now))
    (commit_only,) = drain(f)
    assert commit_only.hard_state is not None and commit_only.hard_state.commit == 2
    assert not commit_only.must_sync
