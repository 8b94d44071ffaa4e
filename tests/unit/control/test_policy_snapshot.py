"""Policy snapshots: deterministic bytes, exact round trip, the largest state fits one frame."""

from __future__ import annotations

import pytest

from meshkp.control.policy import bounds
from meshkp.control.policy.commands import ConflictKind, Keep, Rule
from meshkp.control.policy.snapshot import decode_state, encode_state
from meshkp.control.policy.state import (
    Admin,
    AuditEntry,
    BlacklistEntry,
    ConflictRules,
    PolicyState,
    Resolution,
    Routing,
)
from meshkp.control.raft.messages import MAX_SNAPSHOT_BYTES
from meshkp.control.raft.types import FencingToken
from meshkp.errors import WireError
from meshkp.limits import Limits

BIG = 2**62


def _token(n: int) -> FencingToken:
    return FencingToken(BIG + n, BIG + n)


def _largest() -> PolicyState:
    reason = "r" * bounds.MAX_REASON_CHARS
    actor = "a" * bounds.MAX_ACTOR_CHARS
    node = "n" * 64
    return PolicyState(
        version=BIG, token=_token(0), policy_token=_token(0), limits=Limits(),
        blacklist={n.to_bytes(32, "big"): BlacklistEntry(reason, actor, _token(n))
                   for n in range(bounds.MAX_BLACKLIST)},
        conflict_rules={ConflictKind.DELETE_UPDATE: ConflictRules(
            Rule.MANUAL, {f"{n:0{bounds.MAX_REASON_CHARS}d}": Rule.UPDATE_WINS
                          for n in range(bounds.MAX_RULE_REASONS)})},
        routing={f"{n:064d}": Routing(bounds.MAX_WEIGHT, True, True, "z" * bounds.MAX_ZONE_CHARS)
                 for n in range(bounds.MAX_ROUTES)},
        admins={f"{n:064d}": Admin(bytes(32), actor, _token(n)) for n in range(bounds.MAX_ADMINS)},
        resolutions={f"{n:0{bounds.MAX_CONFLICT_ID_CHARS}d}":
                     Resolution(bytes(32), Keep.UPDATE, actor, _token(n))
                     for n in range(bounds.MAX_RESOLUTIONS)},
        audit=tuple(AuditEntry(BIG + n, _token(n), "resolve-conflict", actor, node, BIG, "ignored",
                               "d" * bounds.MAX_DETAIL_CHARS) for n in range(bounds.MAX_AUDIT)),
        audit_total=BIG,
    )


def test_the_largest_state_fits_one_snapshot_message() -> None:
    data = encode_state(_largest())
    assert len(data) < MAX_SNAPSHOT_BYTES, len(data)


def test_round_trip_is_exact_and_bytes_are_deterministic() -> None:
    state = _largest()
    data = encode_state(state)
    again = decode_state(data)
    assert again == state
    assert encode_state(again) == data
    assert decode_state(encode_state(PolicyState())) == PolicyState()


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x80", b"\x81\xa1f\x02"])
def test_malformed_snapshots_are_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_state(data)


def test_a_snapshot_with_invalid_limits_is_refused() -> None:
    import msgpack

    obj = msgpack.unpackb(encode_state(PolicyState()), raw=False)
    obj["limits"]["packet_bytes"] = 10**12
    with pytest.raises(WireError, match="limits"):
        decode_state(msgpack.packb(obj, use_bin_type=True))
