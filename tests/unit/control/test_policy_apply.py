"""The policy state machine: typed commands, pure deterministic apply, versions, the audit."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.control.policy import bounds
from meshkp.control.policy.apply import apply, apply_entry, check
from meshkp.control.policy.commands import (
    AuditDelete,
    BlacklistAdd,
    BlacklistRemove,
    ChangeMembership,
    ConflictKind,
    Keep,
    Proposal,
    PutAdmin,
    RemoveAdmin,
    ResolveConflict,
    Rule,
    SetConflictRules,
    SetLimits,
    SetRouting,
    decode_proposal,
)
from meshkp.control.policy.snapshot import decode_state, encode_state
from meshkp.control.policy.state import APPLIED, IGNORED, PolicyState
from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.membership import ChangeOp
from meshkp.control.raft.types import Entry, EntryKind
from meshkp.errors import InvalidCommand, RaftUsageError

FP = bytes(range(20))
FP2 = bytes(range(1, 33))
TOKEN = hashlib.sha256(b"secret").digest()
TOKEN2, TOKEN3, TOKEN4 = (hashlib.sha256(w).digest() for w in (b"two", b"three", b"four"))


def _p(command: object, actor: str = "alice", expect: int | None = None) -> Proposal:
    return Proposal(command, actor, "n1", 123, expect)  # type: ignore[arg-type]


def _run(*proposals: Proposal | bytes) -> tuple[PolicyState, list]:  # type: ignore[type-arg]
    state, results = PolicyState(), []
    for index, p in enumerate(proposals, start=1):
        data = p if isinstance(p, bytes) else p.encode()
        result = apply_entry(state, Entry(index, 1, EntryKind.COMMAND, data))
        state = result.state
        results.append(result)
    return state, results


def test_every_command_round_trips_through_its_encoding() -> None:
    commands = [
        SetLimits({"upload_keys": 5, "uid_bytes": 100}),
        BlacklistAdd(((FP, "spam"), (FP2, "court order"))),
        BlacklistRemove((FP,)),
        SetConflictRules(ConflictKind.DELETE_UPDATE, Rule.MANUAL, {"gdpr": Rule.DELETE_WINS}),
        SetRouting("n2", 50, True, False, "eu-1"),
        PutAdmin("bob", TOKEN),
        RemoveAdmin("bob"),
        ResolveConflict("c-1", FP, Keep.UPDATE, {"n1": 3, "n2": 1}),
        AuditDelete(FP2, "takedown", 99, "n3"),
        ChangeMembership(ChangeOp.PROMOTE, "n4"),
    ]
    for command in commands:
        proposal = _p(command, expect=4)
        assert decode_proposal(proposal.encode()) == proposal


@pytest.mark.parametrize(("command", "message"), [
    (SetLimits({}), "at least one"),
    (SetLimits({"nope": 1}), "unknown limit"),
    (SetLimits({"uid_bytes": 0}), "uid_bytes must be an integer in 1"),
    (BlacklistAdd(((b"hex-as-text", "x"),)), "fingerprint"),
    (BlacklistAdd(((FP, ""),)), "reason"),
    (BlacklistAdd(()), "1..1000"),
    (SetRouting("n1", -1), "weight"),
    (SetRouting("", 1), "node"),
    (PutAdmin("bob", b"short"), "SHA-256"),
    (ResolveConflict("c", FP, Keep.DELETE, {"n1": 0}), "covers counter of n1"),
    (ChangeMembership(ChangeOp.BOOTSTRAP, "a"), "membership op"),
])
def test_bad_commands_are_refused_before_proposing(command: object, message: str) -> None:
    with pytest.raises(InvalidCommand, match=message):
        _p(command).encode()


def test_policy_changes_bump_the_version_and_others_do_not() -> None:
    state, results = _run(
        _p(SetLimits({"upload_keys": 5})),
        _p(BlacklistAdd(((FP, "spam"),))),
        _p(ResolveConflict("c-1", FP, Keep.UPDATE, {"n1": 1})),
        _p(AuditDelete(FP2, "takedown", 5, "n2")),
        _p(SetRouting("n1", 10)),
    )
    assert [r.accepted for r in results] == [True] * 5
    assert state.version == 3
    assert state.policy_token.index == 5 and state.token.index == 5
    assert state.limits.upload_keys == 5 and state.is_blacklisted(FP)
    assert state.routing_of("n1").weight == 10 and state.routing_of("n9").weight == 100
    assert state.resolutions["c-1"].keep is Keep.UPDATE


def test_commands_that_do_not_fit_are_ignored_with_an_audit_entry() -> None:
    state, results = _run(
        _p(PutAdmin("alice", TOKEN)),
        _p(RemoveAdmin("alice")),                                   # the last admin
        _p(RemoveAdmin("nobody")),
        _p(SetLimits({"packet_bytes": 10**9})),                    # breaks packet <= key bytes
        _p(BlacklistRemove((FP,))),                                # not blacklisted
        _p(ResolveConflict("c-1", FP, Keep.UPDATE, {"n1": 1})),
        _p(ResolveConflict("c-1", FP, Keep.DELETE, {"n1": 1})),    # resolved already
        _p(SetLimits({"uid_bytes": 99}), expect=0),                # stale: version is 1
        _p(ChangeMembership(ChangeOp.PROMOTE, "x")),               # not a command entry
        b"\x93garbage",
    )
    outcomes = [r.audit.outcome for r in results]
    assert outcomes == [APPLIED, IGNORED, IGNORED, IGNORED, IGNORED, APPLIED, IGNORED, IGNORED,
                        IGNORED, IGNORED]
    assert "last admin" in results[1].audit.detail
    assert "stale" in results[7].audit.detail
    assert results[9].audit.op == "invalid"
    assert state.version == 1 and "alice" in state.admins
    assert state.token.index == 10  # every entry is consumed, applied or not


def test_check_refuses_early_what_apply_would_ignore() -> None:
    state, _ = _run(_p(PutAdmin("alice", TOKEN)))
    with pytest.raises(InvalidCommand, match="last admin"):
        check(state, _p(RemoveAdmin("alice")))
    check(state, _p(PutAdmin("bob", TOKEN)))


def test_the_audit_names_actor_node_time_and_token() -> None:
    _, results = _run(_p(BlacklistAdd(((FP, "spam"),)), actor="carol"))
    audit = results[0].audit
    assert (audit.seq, audit.op, audit.actor) == (1, "blacklist-add", "carol")
    assert (audit.node, audit.hlc) == ("n1", 123)
    assert (audit.token.term, audit.token.index) == (1, 1)


def test_config_and_noop_entries() -> None:
    founding = bootstrap("n1")
    state = apply(PolicyState(), founding.entries[0])
    assert state.audit[-1].op == "membership" and "bootstrap n1" in state.audit[-1].detail
    state = apply(state, Entry(2, 2, EntryKind.NOOP))
    assert len(state.audit) == 1 and state.token.index == 2


def test_entries_apply_once_in_order() -> None:
    state, _ = _run(_p(SetRouting("n1", 1)))
    with pytest.raises(RaftUsageError):
        apply(state, Entry(1, 1, EntryKind.NOOP))
    with pytest.raises(RaftUsageError):
        apply(state, Entry(3, 1, EntryKind.NOOP))


def test_the_audit_is_bounded_and_pages() -> None:
    state = PolicyState()
    for index in range(1, bounds.MAX_AUDIT + 11):
        state = apply(state, Entry(index, 1, EntryKind.COMMAND, _p(SetRouting("n1", index % 100)).encode()))
    assert len(state.audit) == bounds.MAX_AUDIT and state.audit_total == bounds.MAX_AUDIT + 10
    page = state.audit_page(after_seq=0, limit=3)
    assert [a.seq for a in page] == [11, 12, 13]  # the oldest kept
    page = state.audit_page(after_seq=state.audit_total - 2, limit=10)
    assert [a.seq for a in page] == [state.audit_total - 1, state.audit_total]


def test_conflict_rules_fall_back_to_the_default() -> None:
    rules = SetConflictRules(ConflictKind.DELETE_UPDATE, Rule.UPDATE_WINS, {"court": Rule.MANUAL})
    state, _ = _run(_p(rules))
    assert state.rule_for(ConflictKind.DELETE_UPDATE, "court") is Rule.MANUAL
    assert state.rule_for(ConflictKind.DELETE_UPDATE, "spam") is Rule.UPDATE_WINS
    assert PolicyState().rule_for(ConflictKind.DELETE_UPDATE, "x") is Rule.DELETE_WINS


def test_admins_are_found_by_token_hash() -> None:
    state, _ = _run(_p(PutAdmin("alice", TOKEN)))
    assert state.admin_for(TOKEN) == "alice"
    assert state.admin_for(hashlib.sha256(b"guess").digest()) is None


def test_admin_keys_are_kept_with_when_each_was_replaced_or_removed() -> None:
    k1, k2, k3 = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32

    def at(command: object, hlc: int) -> Proposal:
        return Proposal(command, "ops", "n1", hlc)  # type: ignore[arg-type]

    state, results = _run(at(PutAdmin("alice", TOKEN, k1), 10), at(PutAdmin("bob", TOKEN2, k3), 15),
                          at(PutAdmin("alice", TOKEN3, k2), 20), at(RemoveAdmin("bob"), 30),
                          at(PutAdmin("carol", TOKEN4, k2), 40))
    assert [r.accepted for r in results] == [True, True, True, True, False]  # k2 is alice's
    assert state.admins["alice"].key == k2 and state.admin_keys == {k1: "alice", k2: "alice",
                                                                    k3: "bob"}
    # A delete signed by alice's first key counts only if stamped before its replacement.
    assert state.admin_at(k1, 19) == "alice" and state.admin_at(k1, 20) is None
    assert state.admin_at(k2, 10**9) == "alice"
    assert state.admin_at(k3, 29) == "bob" and state.admin_at(k3, 31) is None
    assert decode_state(encode_state(state)) == state


_commands = st.one_of(
    st.builds(lambda n: SetLimits({"upload_keys": n}), st.integers(1, 10**6)),
    st.builds(lambda b: BlacklistAdd(((bytes([b]) * 20, "r"),)), st.integers(0, 5)),
    st.builds(lambda b: BlacklistRemove((bytes([b]) * 20,)), st.integers(0, 5)),
    st.builds(lambda w: SetRouting("n1", w), st.integers(0, 100)),
    st.builds(lambda n: PutAdmin(f"a{n}", TOKEN), st.integers(0, 3)),
    st.builds(lambda n: RemoveAdmin(f"a{n}"), st.integers(0, 3)),
)


@given(st.lists(st.tuples(_commands, st.one_of(st.none(), st.integers(0, 5))), max_size=30))
def test_apply_is_deterministic_and_equal_versions_mean_equal_policy(ops: list) -> None:  # type: ignore[type-arg]
    # Two replicas apply the same log: equal states, entry by entry; and whenever two
    # prefixes reach the same policy version they hold the same policy.
    a = b = PolicyState()
    policy_at: dict[int, bytes] = {}
    for index, (command, expect) in enumerate(ops, start=1):
        entry = Entry(index, 1, EntryKind.COMMAND, _p(command, expect=expect).encode())
        a, b = apply(a, entry), apply(b, entry)
        assert encode_state(a) == encode_state(b)
        policy = encode_state(PolicyState(
            version=a.version, limits=a.limits, blacklist=a.blacklist,
            conflict_rules=a.conflict_rules, routing=a.routing, admins=a.admins))
        assert policy_at.setdefault(a.version, policy) == policy
