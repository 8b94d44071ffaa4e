"""The commands the control log carries: typed, validated, msgpack-encoded in a Proposal.

A client's change becomes a Proposal (command + who + from where + when) on the node that took
the request; `Proposal.encode()` is what RaftCore.propose() appends. Validation happens twice:
before proposing (InvalidCommand, the client gets a 4xx and nothing is proposed) and again in
apply, where a command that is malformed, or no longer fits the state it meets, is ignored
with an audit entry saying why; identically on every node, since validation is pure.

Membership changes are not commands in the log (they are CONFIG entries the core reads), but
ChangeMembership travels in a Proposal so a follower can forward it to the leader like any
other change; the leader's driver turns it into RaftCore.propose_change().
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, Self

import msgpack

from meshkp.control.policy import bounds
from meshkp.control.raft.membership import MAX_NODE_ID_CHARS, ChangeOp
from meshkp.errors import InvalidCommand
from meshkp.limits import Limits

PROPOSAL_FORMAT = 1
LIMIT_NAMES = frozenset(f.name for f in fields(Limits))


class ConflictKind(str, Enum):
    """Conflicts the data layer detects; today one: a delete concurrent with an update."""

    DELETE_UPDATE = "delete-update"


class Rule(str, Enum):
    """How a conflict of a kind is decided: automatically through the log, or by an operator."""

    DELETE_WINS = "delete-wins"
    UPDATE_WINS = "update-wins"
    MANUAL = "manual"  # stays in the conflict queue until POST /cluster/conflicts/{id}/resolve


class Keep(str, Enum):
    """The side a resolution keeps."""

    DELETE = "delete"
    UPDATE = "update"


class Command:
    """Base of every command: a frozen dataclass with a unique OP."""

    __slots__ = ()
    OP: ClassVar[str]
    # Whether applying it changes the policy (and so bumps the policy version).
    CHANGES_POLICY: ClassVar[bool] = True

    def validate(self) -> None:
        """InvalidCommand naming the first bad field; None if the command is well-formed."""

    def to_args(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the audit trail."""
        return self.OP


@dataclass(frozen=True, slots=True)
class SetLimits(Command):
    """Set some `Limits` fields (the others keep their value); the result must validate."""

    OP: ClassVar[str] = "set-limits"
    values: Mapping[str, int]

    def validate(self) -> None:
        if not self.values:
            raise InvalidCommand("set-limits needs at least one NAME=VALUE")
        for name, value in self.values.items():
            if name not in LIMIT_NAMES:
                raise InvalidCommand(f"unknown limit {name!r}; known: {', '.join(sorted(LIMIT_NAMES))}")
            _integer(value, f"limit {name}", 1, 2**63 - 1)

    def to_args(self) -> dict[str, Any]:
        return {"values": dict(sorted(self.values.items()))}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SetLimits:
        values = _get(args, "values", Mapping)
        return cls({str(k): v for k, v in values.items()})

    def describe(self) -> str:
        return "set limits " + ", ".join(f"{k}={v}" for k, v in sorted(self.values.items()))


@dataclass(frozen=True, slots=True)
class BlacklistAdd(Command):
    """Blacklist fingerprints, each with a reason (re-adding one updates its reason)."""

    OP: ClassVar[str] = "blacklist-add"
    entries: tuple[tuple[bytes, str], ...]

    def validate(self) -> None:
        _batch(len(self.entries))
        for fingerprint, reason in self.entries:
            _fingerprint(fingerprint)
            _text(reason, "reason", bounds.MAX_REASON_CHARS, allow_empty=False)

    def to_args(self) -> dict[str, Any]:
        return {"entries": [[fp, reason] for fp, reason in self.entries]}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> BlacklistAdd:
        items = _get(args, "entries", list)
        _batch(len(items))
        if not all(isinstance(item, list) and len(item) == 2 for item in items):
            raise InvalidCommand("blacklist-add entries must be [fingerprint, reason] pairs")
        return cls(tuple((item[0], item[1]) for item in items))

    def describe(self) -> str:
        return f"blacklist {len(self.entries)} fingerprint(s): " + _fingerprints_text(
            fp for fp, _ in self.entries)


@dataclass(frozen=True, slots=True)
class BlacklistRemove(Command):
    OP: ClassVar[str] = "blacklist-remove"
    fingerprints: tuple[bytes, ...]

    def validate(self) -> None:
        _batch(len(self.fingerprints))
        for fingerprint in self.fingerprints:
            _fingerprint(fingerprint)

    def to_args(self) -> dict[str, Any]:
        return {"fingerprints": list(self.fingerprints)}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> BlacklistRemove:
        items = _get(args, "fingerprints", list)
        _batch(len(items))
        return cls(tuple(items))

    def describe(self) -> str:
        listed = _fingerprints_text(self.fingerprints)
        return f"unblacklist {len(self.fingerprints)} fingerprint(s): {listed}"


@dataclass(frozen=True, slots=True)
class SetConflictRules(Command):
    """Replace the rules of one conflict kind: a default and per-tombstone-reason overrides."""

    OP: ClassVar[str] = "set-conflict-rules"
    kind: ConflictKind
    default: Rule
    by_reason: Mapping[str, Rule]

    def validate(self) -> None:
        _enum(self.kind, ConflictKind, "kind")
        _enum(self.default, Rule, "default")
        if len(self.by_reason) > bounds.MAX_RULE_REASONS:
            raise InvalidCommand(f"at most {bounds.MAX_RULE_REASONS} per-reason rules")
        for reason, rule in self.by_reason.items():
            _text(reason, "reason", bounds.MAX_REASON_CHARS, allow_empty=False)
            _enum(rule, Rule, f"rule for reason {reason!r}")

    def to_args(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "default": self.default.value,
                "by_reason": {r: rule.value for r, rule in sorted(self.by_reason.items())}}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SetConflictRules:
        by_reason = _get(args, "by_reason", Mapping)
        return cls(_parse_enum(ConflictKind, args.get("kind"), "kind"),
                   _parse_enum(Rule, args.get("default"), "default"),
                   {str(r): _parse_enum(Rule, v, f"rule for {r!r}") for r, v in by_reason.items()})

    def describe(self) -> str:
        overrides = "".join(f", {r}: {rule.value}" for r, rule in sorted(self.by_reason.items()))
        return f"conflict rules {self.kind.value}: default {self.default.value}{overrides}"


@dataclass(frozen=True, slots=True)
class SetRouting(Command):
    """One node's routing: load-balancer weight, drain (health 503), read-only, zone."""

    OP: ClassVar[str] = "set-routing"
    node: str
    weight: int = 100
    drain: bool = False
    read_only: bool = False
    zone: str = ""

    def validate(self) -> None:
        _text(self.node, "node", MAX_NODE_ID_CHARS, allow_empty=False)
        _integer(self.weight, "weight", 0, bounds.MAX_WEIGHT)
        for name in ("drain", "read_only"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidCommand(f"{name} must be true or false")
        _text(self.zone, "zone", bounds.MAX_ZONE_CHARS)

    def to_args(self) -> dict[str, Any]:
        return {"node": self.node, "weight": self.weight, "drain": self.drain,
                "read_only": self.read_only, "zone": self.zone}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SetRouting:
        return cls(args.get("node"), args.get("weight"), args.get("drain"),  # type: ignore[arg-type]
                   args.get("read_only"), args.get("zone"))  # type: ignore[arg-type]

    def describe(self) -> str:
        return (f"routing {self.node}: weight {self.weight}, drain {self.drain}, "
                f"read_only {self.read_only}, zone {self.zone or '-'}")


@dataclass(frozen=True, slots=True)
class PutAdmin(Command):
    """Add or replace a named admin identity; only the SHA-256 of its token and the public key
    derived from it (meshkp/keys/adminkey.py) are replicated. An older node sends no key."""

    OP: ClassVar[str] = "put-admin"
    name: str
    token_sha256: bytes
    key: bytes = b""

    def validate(self) -> None:
        _text(self.name, "name", bounds.MAX_NAME_CHARS, allow_empty=False)
        if not isinstance(self.token_sha256, bytes) or len(self.token_sha256) != bounds.TOKEN_HASH_BYTES:
            raise InvalidCommand("token_sha256 must be the 32-byte SHA-256 of the token")
        if not isinstance(self.key, bytes) or len(self.key) not in (0, bounds.ADMIN_KEY_BYTES):
            raise InvalidCommand("key must be the admin's 32-byte Ed25519 public key")

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"name": self.name, "sha256": self.token_sha256}
        if self.key:
            args["key"] = self.key
        return args

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> PutAdmin:
        return cls(args.get("name"), args.get("sha256"), args.get("key", b""))  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"admin {self.name} set"


@dataclass(frozen=True, slots=True)
class RemoveAdmin(Command):
    OP: ClassVar[str] = "remove-admin"
    name: str

    def validate(self) -> None:
        _text(self.name, "name", bounds.MAX_NAME_CHARS, allow_empty=False)

    def to_args(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RemoveAdmin:
        return cls(args.get("name"))  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"admin {self.name} removed"


@dataclass(frozen=True, slots=True)
class ResolveConflict(Command):
    """Decide a conflict. Every node then writes a record update whose version vector
    dominates `covers` (the conflicting record's vector, as the resolver saw it) and the
    tombstone's, so replicas converge on the decision and a later sync cannot reopen it."""

    OP: ClassVar[str] = "resolve-conflict"
    CHANGES_POLICY: ClassVar[bool] = False
    conflict_id: str
    fingerprint: bytes
    keep: Keep
    covers: Mapping[str, int]
    # The proposing node's signed proof of the resolution (meshkp/keys/deleteproof.py, encoded;
    # opaque here): every node writes it into the record, and peers check the record by it.
    # b"" from an older node.
    proof: bytes = b""

    def validate(self) -> None:
        _text(self.conflict_id, "conflict_id", bounds.MAX_CONFLICT_ID_CHARS, allow_empty=False)
        if not isinstance(self.proof, bytes) or len(self.proof) > bounds.MAX_PROOF_BYTES:
            raise InvalidCommand(f"proof must be bytes, at most {bounds.MAX_PROOF_BYTES}")
        _fingerprint(self.fingerprint)
        _enum(self.keep, Keep, "keep")
        if len(self.covers) > bounds.MAX_COVERS:
            raise InvalidCommand(f"covers holds at most {bounds.MAX_COVERS} entries")
        for node, counter in self.covers.items():
            _text(node, "covers node", MAX_NODE_ID_CHARS, allow_empty=False)
            _integer(counter, f"covers counter of {node}", 1, 2**63 - 1)

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"id": self.conflict_id, "fp": self.fingerprint,
                                "keep": self.keep.value, "covers": dict(sorted(self.covers.items()))}
        if self.proof:
            args["proof"] = self.proof
        return args

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ResolveConflict:
        covers = _get(args, "covers", Mapping)
        return cls(args.get("id"), args.get("fp"),  # type: ignore[arg-type]
                   _parse_enum(Keep, args.get("keep"), "keep"), dict(covers),
                   args.get("proof", b""))

    def describe(self) -> str:
        return f"conflict {self.conflict_id} on {self.fingerprint.hex()}: keep {self.keep.value}"


@dataclass(frozen=True, slots=True)
class AuditDelete(Command):
    """An admin delete taken without the log (deletes stay AP), recorded once reachable.

    `deleted_hlc` is the tombstone's stamp and `node` the node that took it; the Proposal's
    actor is the admin. It changes no policy: it makes the delete part of the audit trail.
    """

    OP: ClassVar[str] = "audit-delete"
    CHANGES_POLICY: ClassVar[bool] = False
    fingerprint: bytes
    reason: str
    deleted_hlc: int
    node: str

    def validate(self) -> None:
        _fingerprint(self.fingerprint)
        _text(self.reason, "reason", bounds.MAX_REASON_CHARS)
        _text(self.node, "node", MAX_NODE_ID_CHARS, allow_empty=False)
        _integer(self.deleted_hlc, "deleted_hlc (an HLC stamp)", 0, 2**64 - 1)

    def to_args(self) -> dict[str, Any]:
        return {"fp": self.fingerprint, "reason": self.reason, "hlc": self.deleted_hlc, "node": self.node}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> AuditDelete:
        return cls(args.get("fp"), args.get("reason"), args.get("hlc"), args.get("node"))  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"key {self.fingerprint.hex()} deleted on {self.node}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ResetPeerKey(Command):
    """Forget the Ed25519 key every node pinned for the configured id `node` (trust on first
    use), e.g. after `meshkp restore` gave that node a new identity; with `key`, pin that key
    instead, so no other key can claim the id first. Each node applies it to its key directory
    (meshkp/net/peerkeys.py); it changes no policy, and the audit trail names who asked."""

    OP: ClassVar[str] = "reset-peer-key"
    CHANGES_POLICY: ClassVar[bool] = False
    node: str
    key: bytes = b""

    def validate(self) -> None:
        _text(self.node, "node", MAX_NODE_ID_CHARS, allow_empty=False)
        if not isinstance(self.key, bytes) or len(self.key) not in (0, bounds.ADMIN_KEY_BYTES):
            raise InvalidCommand("key must be the node's 32-byte Ed25519 public key (64 hex "
                                 "digits: identity.key of its GET /cluster/status), or empty")

    def to_args(self) -> dict[str, Any]:
        return {"node": self.node, "key": self.key}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ResetPeerKey:
        return cls(args.get("node"), args.get("key", b""))  # type: ignore[arg-type]

    def describe(self) -> str:
        pinned = f"pinned to {self.key[:8].hex()}" if self.key else "to be learnt again"
        return f"key of node {self.node} reset, {pinned}"


@dataclass(frozen=True, slots=True)
class ChangeMembership(Command):
    """A membership change, forwarded like a command; proposed as a CONFIG entry, never applied."""

    OP: ClassVar[str] = "change-membership"
    CHANGES_POLICY: ClassVar[bool] = False
    op: ChangeOp
    node: str

    def validate(self) -> None:
        if not isinstance(self.op, ChangeOp) or self.op in (ChangeOp.BOOTSTRAP, ChangeOp.RECOVER):
            raise InvalidCommand("membership op must be add-learner, promote, demote or remove")
        _text(self.node, "node", MAX_NODE_ID_CHARS, allow_empty=False)

    def to_args(self) -> dict[str, Any]:
        return {"op": int(self.op), "node": self.node}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ChangeMembership:
        op = args.get("op")
        if not isinstance(op, int) or isinstance(op, bool) or op not in ChangeOp._value2member_map_:
            raise InvalidCommand(f"unknown membership op {op!r}")
        return cls(ChangeOp(op), args.get("node"))  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"membership {self.op.name.lower()} {self.node}"


COMMANDS: dict[str, type[Command]] = {
    cls.OP: cls
    for cls in (SetLimits, BlacklistAdd, BlacklistRemove, SetConflictRules, SetRouting, PutAdmin,
                RemoveAdmin, ResolveConflict, AuditDelete, ResetPeerKey, ChangeMembership)
}


@dataclass(frozen=True, slots=True)
class Proposal:
    """A command with who asked (`actor`: the admin identity), where (`origin`: the node that
    took the request), when (`hlc`: that node's HLC stamp, wall ms << 16 | logical) and, when
    set, the policy version it was decided against (`expect_version`: compare-and-set; a
    stale one is ignored at apply, so two operators cannot silently overwrite each other)."""

    command: Command
    actor: str
    origin: str
    hlc: int = 0
    expect_version: int | None = None

    def validate(self) -> None:
        self.command.validate()
        _text(self.actor, "actor", bounds.MAX_ACTOR_CHARS, allow_empty=False)
        _text(self.origin, "origin", MAX_NODE_ID_CHARS, allow_empty=False)
        _integer(self.hlc, "hlc (an HLC stamp)", 0, 2**64 - 1)
        if self.expect_version is not None:
            _integer(self.expect_version, "expect_version (a policy version)", 0, 2**63 - 1)

    def encode(self) -> bytes:
        """Validate, then the bytes to propose; InvalidCommand if anything is wrong."""
        self.validate()
        data: bytes = msgpack.packb(
            {"f": PROPOSAL_FORMAT, "op": self.command.OP, "args": self.command.to_args(),
             "actor": self.actor, "origin": self.origin, "hlc": self.hlc,
             "expect": self.expect_version},
            use_bin_type=True,
        )
        return data


def decode_proposal(data: bytes) -> Proposal:
    """Inverse of Proposal.encode, validated; InvalidCommand saying what is wrong."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types; the contract is InvalidCommand only
        raise InvalidCommand(f"the command is not valid msgpack: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("f") != PROPOSAL_FORMAT:
        raise InvalidCommand(f"the command is not a format-{PROPOSAL_FORMAT} proposal")
    cls = COMMANDS.get(obj.get("op"))  # type: ignore[arg-type]
    if cls is None:
        raise InvalidCommand(f"unknown command {obj.get('op')!r}; known: {', '.join(sorted(COMMANDS))}")
    args = obj.get("args")
    if not isinstance(args, dict):
        raise InvalidCommand(f"{cls.OP}: args must be a map")
    try:
        command = cls.from_args(args)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidCommand(f"{cls.OP}: malformed arguments: {exc}") from exc
    proposal = Proposal(command, obj.get("actor"), obj.get("origin"), obj.get("hlc"),  # type: ignore[arg-type]
                        obj.get("expect"))
    proposal.validate()
    return proposal


# -- field checks (InvalidCommand naming the field) ----------------------------------------------

def _get(args: Mapping[str, Any], key: str, kind: type) -> Any:
    value = args.get(key)
    if not isinstance(value, kind):
        raise InvalidCommand(f"field {key!r} must be a {kind.__name__}")
    return value


def _text(value: object, what: str, limit: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not value and not allow_empty):
        raise InvalidCommand(f"{what} must be a string of {0 if allow_empty else 1}..{limit} characters, "
                             f"got {value!r:.80}")
    return value


def _integer(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidCommand(f"{what} must be an integer in {low}..{high}, got {value!r:.40}")
    return value


def _fingerprint(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) not in bounds.FINGERPRINT_LENGTHS:
        raise InvalidCommand("a fingerprint is 16, 20 or 32 raw bytes (v3, v4, v6)")
    return value


def _batch(count: int) -> None:
    if not 0 < count <= bounds.MAX_BLACKLIST_BATCH:
        raise InvalidCommand(f"a blacklist change holds 1..{bounds.MAX_BLACKLIST_BATCH} fingerprints, "
                             f"got {count}; split it")


def _enum(value: object, kind: type[Enum], what: str) -> None:
    if not isinstance(value, kind):
        raise InvalidCommand(f"{what} must be one of {', '.join(str(m.value) for m in kind)}")


def _parse_enum(kind: type[Any], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidCommand(f"{what} must be one of {', '.join(str(m.value) for m in kind)}, "
                             f"got {value!r}") from None


def _fingerprints_text(fingerprints: Any) -> str:
    listed = [fp.hex() for fp in fingerprints]
    return ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
