"""A voter that lost its whole Raft state (its store moved away, restarted empty under the same
id) on simulated time: the leader resends its log although its progress said it held it, and
until it has caught up the node neither votes nor campaigns. Its votes were part of what kept
committed entries safe (every commit is on a majority, every leader wins a majority): a voter
that forgot the entries it acknowledged, and its term and vote, could elect a leader without
them, or vote twice in one term. The simulator's checkers (leader completeness, election
safety, state-machine safety) raise if it did.
"""

from __future__ import annotations

import pytest

from meshkp.control.raft.codec import hard_state_from_obj, hard_state_to_obj
from meshkp.control.raft.types import HardState, Role
from meshkp.errors import WireError
from tests.unit.control.simcluster import Cluster


def _three(seed: int) -> tuple[Cluster, str, str, str]:
    cluster = Cluster(seed, ["a", "b", "c"], drift=False)
    leader = cluster.run_until_leader(5.0)
    assert leader is not None
    cluster.run_until(cluster.now + 0.5)
    follower, other = sorted(set(cluster.nodes) - {leader})
    return cluster, leader, follower, other


def test_a_wiped_follower_is_sent_its_log_again_by_the_leader_that_thought_it_matched() -> None:
    cluster, leader, follower, _ = _three(1)
    for n in range(5):
        assert cluster.propose(f"before-{n}".encode())
    cluster.run_until(cluster.now + 0.5)
    lead = cluster.nodes[leader].core
    assert lead is not None and lead.status(0.0).peers[follower].match == lead.last_index
    cluster.wipe(follower)
    cluster.run_until(cluster.now + 3.0)
    assert cluster.leased_leader() == leader
    again = cluster.nodes[follower].core
    assert again is not None and again.commit == lead.commit and not again.catching_up
    assert again.entries(1) == lead.entries(1)


def test_a_wiped_voter_cannot_elect_a_leader_without_the_entries_it_acknowledged() -> None:
    for seed in range(5):
        cluster, leader, follower, other = _three(seed)
        # Entries committed by the leader and `follower` alone: `other` never gets them.
        cluster.partition({leader, follower}, {other})
        for n in range(5):
            assert cluster.propose(f"committed-{n}".encode())
        cluster.run_until(cluster.now + 0.5)
        lead = cluster.nodes[leader].core
        assert lead is not None
        committed = lead.commit
        assert cluster.nodes[other].core.last_index < committed  # type: ignore[union-attr]
        # The leader goes down, `follower` loses its store, and the two others meet.
        cluster.crash(leader)
        cluster.heal()
        cluster.wipe(follower)
        # Before the fix `other` won `follower`'s vote here, and the checker raised: leader
        # completeness (the new leader lacks entries committed in an earlier term).
        assert cluster.run_until_leader(5.0) is None, f"seed {seed}: a leader without the commits"
        wiped = cluster.nodes[follower].core
        assert wiped is not None and wiped.catching_up and wiped.role is Role.FOLLOWER
        # The only holder comes back: it leads, and `follower` catches up and votes again.
        cluster.restart(leader)
        assert cluster.run_until_leader(5.0) is not None, f"seed {seed}"
        cluster.run_until(cluster.now + 1.0)
        wiped = cluster.nodes[follower].core
        assert wiped is not None and not wiped.catching_up and wiped.commit >= committed
        # Caught up, it is a voter again: with the leader down, the other two elect one.
        current = cluster.leased_leader()
        assert current is not None
        cluster.crash(current)
        assert cluster.run_until_leader(5.0) is not None, f"seed {seed}: no leader after catch-up"
        cluster.check_log_matching()


def test_a_wiped_voter_that_crashes_while_catching_up_still_withholds_its_vote() -> None:
    cluster, leader, follower, other = _three(2)
    cluster.partition({leader, follower}, {other})
    for n in range(5):
        assert cluster.propose(f"committed-{n}".encode())
    cluster.run_until(cluster.now + 0.5)
    cluster.wipe(follower)
    cluster.run_until(cluster.now + 0.002)  # a first message at most: not caught up
    cluster.crash(follower)
    cluster.crash(leader)
    cluster.heal()
    cluster.restart(follower)  # from what it persisted so far, which says it is catching up
    assert cluster.nodes[follower].core.catching_up  # type: ignore[union-attr]
    assert cluster.run_until_leader(5.0) is None


def test_the_catching_up_flag_is_stored_only_when_set() -> None:
    assert hard_state_to_obj(HardState(3, "a", 7)) == {"t": 3, "v": "a", "c": 7}  # unchanged form
    flagged = HardState(3, "", 0, catching_up=True)
    assert hard_state_from_obj(hard_state_to_obj(flagged)) == flagged
    with pytest.raises(WireError, match="catching-up flag"):
        hard_state_from_obj({"t": 3, "v": "", "c": 0, "u": "yes"})
