"""Generations (membership.Generation): after `meshkp recover`, members of the old one are refused.

Five voters; two survivors are cut off while the other three commit an entry, then those three
are lost and a survivor is recovered alone (a new epoch). The three come back together, with
their old disks, still cut off from the survivors: they form a majority of the old
configuration and elect a leader there (nothing can tell them yet). Once they reach the
recovered members, those refuse their messages (counted, answered with Refused), the three learn
of the newer epoch, and from then on none of them campaigns again, even when cut off once more:
their forked logs cannot take the new configuration, so only an operator's rejoin mends them.
"""

from __future__ import annotations

from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, Generation, MembershipChange
from meshkp.control.raft.messages import Refused, VoteRequest
from meshkp.control.raft.recovery import force_configuration
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored, Role
from tests.unit.control.helpers import CONFIG, Net, core, drain, founding

VOTERS = ["a", "b", "c", "d", "e"]


def disk(node: str, net: Net) -> Restored:
    c = net.cores[node]
    return Restored(HardState(c.term, "", c.commit), entries=tuple(c.entries(1)))


def _lost_voters_back_and_told() -> tuple[Net, list[str], list[str], dict[str, bool]]:
    """The scenario of the module doc up to the lost voters' learning of the newer epoch."""
    net = Net(VOTERS)
    leader = net.elect()
    survivors = sorted(set(VOTERS) - {leader})[:2]
    lost = sorted(set(VOTERS) - set(survivors))
    cut = {"on": True}
    apart = lambda src, dst, _m: cut["on"] and ((src in survivors) != (dst in survivors))  # noqa: E731
    net.drop = apart
    token = net.cores[leader].propose(net.now, b"only the lost ones have it")
    net.advance(0.3)
    assert net.cores[leader].commit >= token.index  # committed by the three
    old_disks = {n: disk(n, net) for n in lost}
    net.down = set(lost)  # lost for good, as far as anyone knows
    recovered = force_configuration(disk(survivors[0], net), survivors[0], [survivors[1]])
    assert recovered.after.generation == Generation("", 1)
    base = disk(survivors[0], net)
    net.cores[survivors[0]] = core(survivors[0], Restored(
        recovered.hard_state, entries=(*base.entries, recovered.entry)), net.now)
    net.advance(CONFIG.election_timeout_max * 3)
    new_leader = net.cores[survivors[0]]
    assert new_leader.role is Role.LEADER and new_leader.generation == Generation("", 1)

    # The lost three come back together, still cut off: the old majority elects among itself.
    for n in lost:
        net.cores[n] = core(n, old_disks[n], net.now, seed=3)
    net.down = set()
    net.advance(CONFIG.election_timeout_max * 3)
    assert any(net.cores[n].role is Role.LEADER for n in lost)

    cut["on"] = False  # they reach the recovered members
    net.advance(CONFIG.election_timeout_max * 3)
    refused = sum(net.cores[n].generation_refused for n in survivors)
    assert refused > 0
    for n in lost:
        old = net.cores[n]
        assert old.superseded and old.generation == Generation("", 1), n
        assert old.role is not Role.LEADER and old.forked_at is not None, n
    assert new_leader.role is Role.LEADER
    return net, survivors, lost, cut


def test_lost_voters_back_together_are_refused_and_stop_campaigning() -> None:
    net, survivors, lost, cut = _lost_voters_back_and_told()
    cut["on"] = True  # cut off again: told once, they never lead the old configuration again
    terms = {n: net.cores[n].term for n in lost}
    net.advance(CONFIG.election_timeout_max * 5)
    assert {n: net.cores[n].role for n in lost} == {n: Role.FOLLOWER for n in lost}
    assert {n: net.cores[n].term for n in lost} == terms  # not even a campaign


def test_a_forked_voter_rejoins_by_forgetting_its_log_and_catches_up() -> None:
    net, survivors, lost, _cut = _lost_voters_back_and_told()
    leader = net.cores[survivors[0]]
    for n in lost:  # meshkp recover --rejoin: term and vote kept, log and snapshot forgotten
        old = net.cores[n]
        net.cores[n] = core(n, Restored(HardState(old.term, "", 0)), net.now, seed=5)
    net.advance(CONFIG.election_timeout_max * 3)
    token = leader.propose(net.now, b"after the rejoin")
    net.advance(0.5)
    for n in lost:
        back = net.cores[n]
        assert back.forked_at is None and not back.superseded, n
        assert back.configuration == leader.configuration and back.leader == survivors[0], n
        assert back.commit >= token.index, n
        assert back.entries(1, token.index) == leader.entries(1, token.index), n


def test_a_member_of_another_cluster_is_refused_and_told() -> None:
    ours = Configuration(frozenset({"a", "b"}), cluster="c0ffee")
    change = ConfigChange(MembershipChange(ChangeOp.BOOTSTRAP, "a"), ours).encode()
    a = core("a", Restored(HardState(1, "", 0), entries=(Entry(1, 1, EntryKind.CONFIG, change),)))
    assert a.generation == Generation("c0ffee", 0)
    stranger = VoteRequest(5, 9, 5, True, Generation("beef", 0))
    a.handle(1.0, "x", stranger)
    (ready,) = drain(a)
    (out,) = ready.messages
    assert a.generation_refused == 1 and out.to == "x"
    assert type(out.message).__name__ == "Refused" and out.message.generation == Generation("c0ffee", 0)
    a.handle(1.0, "b", VoteRequest(5, 9, 5, True))  # no generation (a joiner, an older node): judged as ever
    assert a.generation_refused == 1


def test_a_leader_told_of_a_newer_generation_steps_down_and_stays_down() -> None:
    alone = core("a", founding(["a"]))
    alone.tick(0.0)
    drain(alone)
    assert alone.role is Role.LEADER
    alone.handle(0.1, "d", Refused(200, "generation", Generation("", 1)))  # from the recovered side
    assert alone.role is Role.FOLLOWER and alone.superseded
    for step in range(1, 40):
        alone.tick(0.1 + step * CONFIG.election_timeout_max / 4)
        drain(alone)
    assert alone.role is Role.FOLLOWER  # a sole voter would elect itself at once otherwise
