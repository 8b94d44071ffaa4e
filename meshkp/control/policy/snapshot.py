"""The bytes of a PolicyState (Raft snapshot data): deterministic msgpack, validated on decode.

Deterministic: every mapping is written in sorted key order, so equal states encode to equal
bytes (tests compare nodes' states by their encoding). A snapshot comes from the leader or
from disk, so decode checks every field and bound and raises WireError, never anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

import msgpack

from meshkp.control.policy import bounds
from meshkp.control.policy.commands import ConflictKind, Keep, Rule
from meshkp.control.policy.state import (
    Admin,
    AuditEntry,
    BlacklistEntry,
    ConflictRules,
    PolicyState,
    Resolution,
    Routing,
)
from meshkp.control.raft.codec import uint
from meshkp.control.raft.types import FencingToken
from meshkp.errors import ConfigError, WireError
from meshkp.limits import Limits

SNAPSHOT_FORMAT = 1
E = TypeVar("E")


def encode_state(state: PolicyState) -> bytes:
    obj = {
        "f": SNAPSHOT_FORMAT,
        "version": state.version,
        "token": _token(state.token),
        "policy_token": _token(state.policy_token),
        "limits": {f.name: getattr(state.limits, f.name) for f in fields(Limits)},
        "blacklist": [[fp, e.reason, e.actor, _token(e.token)] for fp, e in sorted(state.blacklist.items())],
        "rules": {kind.value: [r.default.value, {k: v.value for k, v in sorted(r.by_reason.items())}]
                  for kind, r in sorted(state.conflict_rules.items())},
        "routing": {n: [r.weight, r.drain, r.read_only, r.zone] for n, r in sorted(state.routing.items())},
        "admins": {n: [a.token_sha256, a.actor, _token(a.token), a.key]
                   for n, a in sorted(state.admins.items())},
        "admin_keys": [[k, n, state.admin_keys_retired.get(k)]
                       for k, n in sorted(state.admin_keys.items())],
        "resolutions": {cid: [r.fingerprint, r.keep.value, r.actor, _token(r.token)]
                        for cid, r in sorted(state.resolutions.items())},
        "audit": [[a.seq, _token(a.token), a.op, a.actor, a.node, a.hlc, a.outcome, a.detail]
                  for a in state.audit],
        "audit_total": state.audit_total,
    }
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def decode_state(data: bytes) -> PolicyState:
    """Inverse of encode_state; WireError naming what is malformed."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
        if not isinstance(obj, dict) or obj.get("f") != SNAPSHOT_FORMAT:
            raise WireError(f"policy snapshot is not format {SNAPSHOT_FORMAT}")
        return _decode(obj)
    except WireError:
        raise
    except Exception as exc:  # msgpack's zoo, and any shape mistake below: only WireError out
        raise WireError(f"policy snapshot is malformed: {exc}") from exc


def _decode(obj: Mapping[str, Any]) -> PolicyState:
    limits_obj = _map(obj["limits"], "limits", len(fields(Limits)))
    try:
        limits = Limits(**{str(k): v for k, v in limits_obj.items()})
        limits.validate()
    except (TypeError, ConfigError) as exc:
        raise WireError(f"policy snapshot limits are invalid: {exc}") from exc
    blacklist = {}
    for fp, reason, actor, token in _list(obj["blacklist"], "blacklist", bounds.MAX_BLACKLIST):
        blacklist[_bytes(fp, "fingerprint")] = BlacklistEntry(_str(reason), _str(actor), _from_token(token))
    rules = {}
    for kind, (default, by_reason) in _map(obj["rules"], "rules", len(ConflictKind)).items():
        reasons = _map(by_reason, "rules", bounds.MAX_RULE_REASONS)
        overrides = {_str(r): _enum(Rule, v) for r, v in reasons.items()}
        rules[_enum(ConflictKind, kind)] = ConflictRules(_enum(Rule, default), overrides)
    routing = {}
    for node, (weight, drain, read_only, zone) in _map(obj["routing"], "routing", bounds.MAX_ROUTES).items():
        routing[_str(node)] = Routing(uint(weight, "weight"), _bool(drain), _bool(read_only), _str(zone))
    admins = {}
    for name, entry in _map(obj["admins"], "admins", bounds.MAX_ADMINS).items():
        sha, actor, token = entry[:3]
        key = _bytes(entry[3], "admin key") if len(entry) > 3 else b""  # older snapshots: none
        admins[_str(name)] = Admin(_bytes(sha, "token hash"), _str(actor), _from_token(token), key)
    admin_keys, retired = {}, {}
    for k, n, at in _list(obj.get("admin_keys", []), "admin keys", bounds.MAX_ADMIN_KEYS):
        admin_keys[_bytes(k, "admin key")] = _str(n)
        if at is not None:
            retired[_bytes(k, "admin key")] = uint(at, "admin key retired at")
    resolutions = {}
    stored = _map(obj["resolutions"], "resolutions", bounds.MAX_RESOLUTIONS)
    for cid, (fp, keep, actor, token) in stored.items():
        resolutions[_str(cid)] = Resolution(_bytes(fp, "fingerprint"), _enum(Keep, keep), _str(actor),
                                            _from_token(token))
    audit = tuple(
        AuditEntry(uint(seq, "seq"), _from_token(token), _str(op), _str(actor), _str(node),
                   uint(hlc, "hlc"), _str(outcome), _str(detail))
        for seq, token, op, actor, node, hlc, outcome, detail
        in _list(obj["audit"], "audit", bounds.MAX_AUDIT)
    )
    return PolicyState(
        version=uint(obj["version"], "version"),
        token=_from_token(obj["token"]),
        policy_token=_from_token(obj["policy_token"]),
        limits=limits,
        blacklist=blacklist,
        conflict_rules=rules,
        routing=routing,
        admins=admins,
        admin_keys=admin_keys,
        admin_keys_retired=retired,
        resolutions=resolutions,
        audit=audit,
        audit_total=uint(obj["audit_total"], "audit_total"),
    )


def _token(token: FencingToken) -> list[int]:
    return [token.term, token.index]


def _from_token(obj: object) -> FencingToken:
    if not isinstance(obj, list) or len(obj) != 2:
        raise WireError("a fencing token must be [term, index]")
    return FencingToken(uint(obj[0], "token term"), uint(obj[1], "token index"))


def _map(obj: object, what: str, limit: int) -> dict[Any, Any]:
    if not isinstance(obj, dict) or len(obj) > limit:
        raise WireError(f"policy snapshot {what} must be a map of at most {limit} entries")
    return obj


def _list(obj: object, what: str, limit: int) -> list[Any]:
    if not isinstance(obj, list) or len(obj) > limit:
        raise WireError(f"policy snapshot {what} must be a list of at most {limit} items")
    return obj


def _str(value: object) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise WireError("policy snapshot text fields must be short strings")
    return value


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) > 64:
        raise WireError(f"policy snapshot {what} must be bin")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise WireError("policy snapshot flags must be booleans")
    return value


def _enum(kind: type[E], value: object) -> E:
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValueError:
        raise WireError(f"policy snapshot holds unknown {kind.__name__} {value!r}") from None
