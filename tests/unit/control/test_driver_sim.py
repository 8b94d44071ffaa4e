"""Real ControlPlanes (asyncio driver + plane) over the in-process transport, on a FakeClock."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from meshkp.control import (
    ChangeMembership,
    ChangeOp,
    ControlConfig,
    FencingToken,
    Proposal,
    Role,
    SetLimits,
    encode_state,
)
from meshkp.errors import ControlUnavailable, InvalidCommand, StoreFull
from tests.unit.control.drivercluster import DriverCluster


@pytest.fixture(params=[3, 5], ids=["3-nodes", "5-nodes"])
def cluster(request: pytest.FixtureRequest) -> DriverCluster:
    c = DriverCluster(request.param, seed=7 + request.param)
    c.until(lambda: len(c.voters()) == request.param, limit=60)
    c.until(lambda: all(c.planes[n].state.token == c.planes[c.ids[0]].state.token for n in c.ids), limit=5)
    yield c
    c.close()


def test_the_founder_leads_and_the_others_become_voters(cluster: DriverCluster) -> None:
    assert cluster.leader() == "n1"
    for node in cluster.ids:
        assert cluster.planes[node].state.limits.search_results == 250  # the founder's seed policy
        assert cluster.planes[node].driver.errors == 0


def test_a_change_sent_to_a_follower_applies_everywhere(cluster: DriverCluster) -> None:
    follower = cluster.ids[-1]
    applied = cluster.run(cluster.planes[follower].propose(SetLimits({"search_results": 77}), "alice"))
    assert applied.accepted
    # Read-your-writes: the answering node has applied it when propose returns.
    assert cluster.planes[follower].state.limits.search_results == 77
    cluster.until(lambda: all(p.state.limits.search_results == 77 for p in cluster.planes.values()), limit=1)
    seen = []
    cluster.planes["n2"].observe(seen.append)
    assert seen and seen[0].proposal is None and seen[0].state.limits.search_results == 77


def test_observers_see_every_command_in_log_order(cluster: DriverCluster) -> None:
    seen: list[int] = []
    cluster.planes["n2"].observe(lambda a: seen.append(a.token.index))
    for value in (11, 12, 13):
        cluster.run(cluster.planes["n2"].propose(SetLimits({"search_results": value}), "alice"))
    cluster.advance(0.5)
    assert seen == sorted(seen) and len(seen) == 4  # the whole state once, then three commands


def test_an_invalid_command_is_refused_before_the_log(cluster: DriverCluster) -> None:
    last = cluster.planes["n2"].core.last_index
    with pytest.raises(InvalidCommand):
        cluster.run(cluster.planes["n2"].propose(SetLimits({"no_such_limit": 1}), "alice"))
    assert cluster.planes["n2"].core.last_index == last


def test_a_new_leader_within_3_s_of_a_leader_crash_and_a_change_right_after(cluster: DriverCluster) -> None:
    cluster.crash("n1")
    took = cluster.until(lambda: cluster.leader() is not None, limit=3.0)
    assert took < 3.0
    survivor = sorted(cluster.alive)[-1]
    applied = cluster.run(cluster.planes[survivor].propose(SetLimits({"search_results": 42}), "bob"))
    assert applied.accepted and cluster.planes[survivor].state.limits.search_results == 42


def test_a_minority_refuses_changes_within_the_timeout(cluster: DriverCluster) -> None:
    everyone = set(cluster.ids)
    minority = set(cluster.ids[: (len(cluster.ids) - 1) // 2])  # n1 (the leader) in it
    cluster.network.isolate(minority, everyone)
    start = cluster.clock.now()
    with pytest.raises(ControlUnavailable) as err:
        cluster.run(cluster.planes["n1"].propose(SetLimits({"search_results": 5}), "eve", timeout=2.0))
    assert cluster.clock.now() - start <= 2.5
    assert err.value.retry_after > 0
    # The majority elects its own leader and commits.
    majority = sorted(everyone - minority)
    cluster.until(lambda: any(cluster.planes[n].core.role is Role.LEADER for n in majority), limit=3)
    cluster.run(cluster.planes[majority[0]].propose(SetLimits({"search_results": 6}), "eve"))
    cluster.network.heal()
    cluster.until(lambda: all(p.state.limits.search_results == 6 for p in cluster.planes.values()), limit=5)
    assert all(p.state.limits.search_results != 5 for p in cluster.planes.values())


def test_seven_nodes_keep_five_voters_and_replace_a_dead_one() -> None:
    c = DriverCluster(7, seed=3)
    try:
        c.until(lambda: len(c.voters()) == 5
                and len(c.planes["n1"].core.configuration.learners) == 2, limit=60)
        victim = sorted(c.voters() - {"n1"})[0]
        c.crash(victim)
        c.until(lambda: victim not in c.voters() and len(c.voters()) == 5,
                limit=c.config.dead_voter_replace_after + 10)
    finally:
        c.close()


def test_a_removed_member_is_refused_when_it_comes_back(cluster: DriverCluster) -> None:
    victim = cluster.ids[-1]
    applied = cluster.run(cluster.planes["n2"].propose(ChangeMembership(ChangeOp.REMOVE, victim), "ops"))
    assert applied.change is not None and victim in applied.change.configuration.removed
    cluster.crash(victim)
    cluster.start(victim)  # from what it persisted: it still believes it is a member
    cluster.until(lambda: cluster.planes[victim].core.role is Role.REMOVED, limit=5)
    # The autopilot does not add it back although SWIM says it is alive.
    cluster.advance(cluster.config.learner_stable_time + 2)
    assert not cluster.planes["n1"].core.configuration.is_member(victim)


def test_a_driver_survives_a_failing_store(cluster: DriverCluster) -> None:
    storage = cluster.planes["n2"].driver.storage
    real = storage.save
    failures = iter(range(3))

    async def flaky(ready):  # type: ignore[no-untyped-def]
        if next(failures, None) is not None:
            raise OSError("disk hiccup")
        await real(ready)

    storage.save = flaky  # type: ignore[method-assign]
    cluster.run(cluster.planes["n1"].propose(SetLimits({"search_results": 31}), "alice"))
    cluster.until(lambda: cluster.planes["n2"].state.limits.search_results == 31, limit=5)
    assert cluster.planes["n2"].driver.errors == 3


def test_a_full_disk_is_retried_quietly_and_the_node_catches_up(
    cluster: DriverCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: each Ready refused for a full disk logged a traceback
    (event=raft_driver_iteration_failed), 385 ERROR lines in the disk-full chaos run."""
    storage = cluster.planes["n2"].driver.storage
    real = storage.save
    failures = iter(range(3))

    async def full(ready):  # type: ignore[no-untyped-def]
        if next(failures, None) is not None:
            raise StoreFull("the disk holding /data/keys is full, so nothing was stored")
        await real(ready)

    storage.save = full  # type: ignore[method-assign]
    with caplog.at_level("ERROR"):
        cluster.run(cluster.planes["n1"].propose(SetLimits({"search_results": 32}), "alice"))
        cluster.until(lambda: cluster.planes["n2"].state.limits.search_results == 32, limit=10)
    assert cluster.planes["n2"].driver.errors == 3
    assert "raft_driver_iteration_failed" not in caplog.text


def test_a_reply_that_arrives_after_its_entry_applied_still_answers(cluster: DriverCluster) -> None:
    follower = cluster.planes[cluster.ids[-1]]
    applied = cluster.run(follower.propose(SetLimits({"search_results": 64}), "alice"))
    # What propose does when ProposeReply comes after the follower applied the entry.
    again = cluster.run(follower._await_applied(applied.token, 1.0))
    assert again.token == applied.token and again.state.limits.search_results == 64
    with pytest.raises(ControlUnavailable):  # same index, another term: lost
        cluster.run(follower._await_applied(FencingToken(applied.token.term + 5, applied.token.index), 1.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_random_crashes_and_restarts_keep_every_node_on_one_policy(seed: int) -> None:
    c = DriverCluster(5, seed=seed)
    rng = random.Random(seed)
    try:
        c.until(lambda: len(c.voters()) == 5, limit=60)
        attempted, last_ok = [], False
        for round_ in range(6):
            victim = rng.choice(sorted(c.alive))
            c.crash(victim)
            c.until(lambda: c.leader() is not None, limit=5)
            asker = rng.choice(sorted(c.alive))
            value = 200 + seed * 10 + round_
            attempted.append(value)
            try:
                c.run(c.planes[asker].propose(SetLimits({"search_results": value}), "chaos"))
                last_ok = True
            except ControlUnavailable:
                last_ok = False  # a lost reply: the change may or may not apply, never twice
            c.start(victim)
            c.advance(rng.uniform(0.0, 1.5))
        c.until(lambda: len({p.state.token for p in c.planes.values()}) == 1, limit=10)
        assert len({encode_state(p.state) for p in c.planes.values()}) == 1
        final = c.planes["n1"].state.limits.search_results
        assert final == attempted[-1] if last_ok else final in attempted
        assert all(p.driver.errors == 0 for p in c.planes.values())
    finally:
        c.close()


def test_proposals_a_deposed_leader_held_are_retried_not_left_to_time_out() -> None:
    c = DriverCluster(5, seed=21)
    try:
        c.until(lambda: len(c.voters()) == 5, limit=60)
        old = c.planes["n1"]

        async def change_behind_a_lost_entry_then_cut() -> object:
            # An entry nobody waits for (another client gave up on it), then ours after it:
            # both only on n1, which is then cut off. The new leader's no-op takes the first
            # index; nothing ever lands at ours unless we retry.
            old.core.propose(c.clock.now(), Proposal(SetLimits({"search_results": 90}), "b", "n1").encode())
            ours = asyncio.ensure_future(old.propose(SetLimits({"search_results": 92}), "a", timeout=8))
            await asyncio.sleep(0)
            c.network.isolate({"n1"}, set(c.ids))
            c.clock.call_later(2.5, c.network.heal)
            return await ours

        began = c.clock.now()
        applied = c.run(change_behind_a_lost_entry_then_cut())
        assert applied.accepted and applied.state.limits.search_results == 92  # type: ignore[attr-defined]
        assert c.clock.now() - began < 6  # not the 8 s deadline of a waiter nobody resolves
    finally:
        c.close()


def test_a_node_restarts_from_its_own_stored_snapshot() -> None:
    """Regression: a ControlPlane built from a Restored with a snapshot raised AttributeError
    (install() ran before the plane's waiter table existed), so a node that had ever compacted
    its log could not start again."""
    config = dataclasses.replace(ControlConfig.local(), snapshot_threshold=4, snapshot_trailing_entries=1)
    c = DriverCluster(3, seed=5, config=config)
    try:
        c.until(lambda: len(c.voters()) == 3, limit=60)
        for value in range(300, 310):
            c.run(c.planes["n1"].propose(SetLimits({"search_results": value}), "chaos"))
        c.until(lambda: all(p.state.limits.search_results == 309 for p in c.planes.values()), limit=5)
        assert c.storages["n2"].snapshot() is not None, "the test needs a node with a stored snapshot"
        c.crash("n2")
        c.start("n2")
        assert c.planes["n2"].state.limits.search_results == 309
        c.run(c.planes["n2"].propose(SetLimits({"search_results": 311}), "chaos"))
        c.until(lambda: all(p.state.limits.search_results == 311 for p in c.planes.values()), limit=5)
    finally:
        c.close()


def test_a_forked_node_refuses_changes_at_once_naming_the_way_out(cluster: DriverCluster) -> None:
    follower = cluster.planes[cluster.ids[-1]]
    last = cluster.planes["n1"].core.last_index
    follower.core.forked_at = 3  # as RaftCore records a leader's log that conflicts with its commit
    with pytest.raises(ControlUnavailable, match="recover --rejoin") as refused:
        cluster.run(follower.propose(SetLimits({"search_results": 91}), "alice"))
    assert refused.value.leader == "n1"
    assert cluster.planes["n1"].core.last_index == last  # nothing was forwarded
    assert follower.proposals_failed == 1
