"""apply(state, entry) -> state: the one pure function every node runs over the committed log.

Deterministic by construction: it reads only the state and the entry (no clock, no config, no
randomness), so nodes that applied the same entries hold equal states. A command that cannot
be applied (malformed, stale expect_version, over a bound, removing the last admin...) is
ignored, and the audit trail says so and why: the log index is consumed either way, on every
node alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshkp.control.policy import bounds
from meshkp.control.policy.commands import (
    AuditDelete,
    BlacklistAdd,
    BlacklistRemove,
    ChangeMembership,
    Command,
    Proposal,
    PutAdmin,
    RemoveAdmin,
    ResetPeerKey,
    ResolveConflict,
    SetConflictRules,
    SetLimits,
    SetRouting,
    decode_proposal,
)
from meshkp.control.policy.state import (
    APPLIED,
    IGNORED,
    Admin,
    AuditEntry,
    BlacklistEntry,
    ConflictRules,
    PolicyState,
    Resolution,
    Routing,
)
from meshkp.control.raft.membership import ChangeOp, ConfigChange
from meshkp.control.raft.types import Entry, EntryKind, FencingToken
from meshkp.errors import ConfigError, InvalidCommand, RaftUsageError, WireError


@dataclass(frozen=True, slots=True)
class Applied:
    """The new state and what the entry was, for the driver's effects on the data layer.

    `proposal` is the decoded command entry (None for a no-op, a config entry or bytes that
    did not decode); `accepted` is False when it was ignored. The driver acts on accepted
    commands only (hide blacklisted keys, write a resolution's record update, ...).
    """

    state: PolicyState
    token: FencingToken
    proposal: Proposal | None = None
    change: ConfigChange | None = None
    audit: AuditEntry | None = None
    accepted: bool = False


class _Refused(Exception):
    """A command that does not fit the state it meets; its message goes to the audit trail."""


def apply(state: PolicyState, entry: Entry) -> PolicyState:
    """The state after applying `entry` (the next index after state.token)."""
    return apply_entry(state, entry).state


def apply_entry(state: PolicyState, entry: Entry) -> Applied:
    """apply() with what happened; RaftUsageError if entries come out of order."""
    if entry.index != state.token.index + 1:
        raise RaftUsageError(f"entry {entry.index} applied after {state.token.index}: entries must be "
                             "applied once each, in log order")
    token = entry.token
    moved = dataclasses.replace(state, token=token)
    if entry.kind is EntryKind.NOOP:
        return Applied(moved, token, accepted=True)
    if entry.kind is EntryKind.CONFIG:
        return _apply_config(moved, entry)
    try:
        proposal = decode_proposal(entry.data)
    except InvalidCommand as exc:
        audit = _audit(moved, "invalid", "", "", 0, IGNORED, str(exc))
        return Applied(_with_audit(moved, audit), token, audit=audit)
    try:
        changed = _apply_command(moved, proposal)
    except _Refused as refusal:
        audit = _audit(moved, proposal.command.OP, proposal.actor, proposal.origin, proposal.hlc,
                       IGNORED, str(refusal))
        return Applied(_with_audit(moved, audit), token, proposal, audit=audit)
    if proposal.command.CHANGES_POLICY:
        changed = dataclasses.replace(changed, version=changed.version + 1, policy_token=token)
    audit = _audit(changed, proposal.command.OP, proposal.actor, proposal.origin, proposal.hlc,
                   APPLIED, proposal.command.describe())
    return Applied(_with_audit(changed, audit), token, proposal, audit=audit, accepted=True)


def check(state: PolicyState, proposal: Proposal) -> None:
    """Refuse before proposing what apply would ignore on `state` (InvalidCommand says why).

    The state may still change before the entry applies; apply decides, this only spares the
    client a round trip through the log for a change that cannot work now.
    """
    proposal.validate()
    try:
        _apply_command(state, proposal)
    except _Refused as refusal:
        raise InvalidCommand(str(refusal)) from None


def _apply_config(state: PolicyState, entry: Entry) -> Applied:
    try:
        change = ConfigChange.decode(entry.data)
    except WireError as exc:  # the core refuses such entries on receipt; belt and braces
        audit = _audit(state, "membership", "", "", 0, IGNORED, str(exc))
        return Applied(_with_audit(state, audit), entry.token, audit=audit)
    cfg = change.configuration
    op = change.change.op
    what = op.name.lower().replace("_", "-")
    if op is ChangeOp.RECOVER:
        what = "forced recovery (meshkp recover, a majority of voters lost) on"
    detail = (f"{what} {change.change.node}: voters {', '.join(sorted(cfg.voters)) or '-'}; "
              f"learners {', '.join(sorted(cfg.learners)) or '-'}")
    audit = _audit(state, "membership", change.actor, change.node, change.hlc, APPLIED, detail)
    return Applied(_with_audit(state, audit), entry.token, change=change, audit=audit, accepted=True)


def _retire(state: PolicyState, key: bytes, hlc: int) -> dict[bytes, int]:
    """The retired admin keys with `key` (if any) retired at `hlc`, when it was replaced or
    removed: deletes it signed before stay provable, later ones do not."""
    retired = dict(state.admin_keys_retired)
    if key and key not in retired and hlc > 0:  # 0: a proposal without a stamp (older node)
        retired[key] = hlc
    return retired


def _apply_command(state: PolicyState, proposal: Proposal) -> PolicyState:
    command: Command = proposal.command
    expect = proposal.expect_version
    if expect is not None and expect != state.version:
        raise _Refused(f"stale: decided against policy version {expect}, the policy is at "
                       f"{state.version}; read it again and retry")
    token, actor = state.token, proposal.actor
    if isinstance(command, SetLimits):
        try:
            limits = dataclasses.replace(state.limits, **command.values)
            limits.validate()
        except ConfigError as exc:
            raise _Refused(str(exc)) from None
        return dataclasses.replace(state, limits=limits)
    if isinstance(command, BlacklistAdd):
        blacklist = dict(state.blacklist)
        for fingerprint, reason in command.entries:
            blacklist[fingerprint] = BlacklistEntry(reason, actor, token)
        if len(blacklist) > bounds.MAX_BLACKLIST:
            raise _Refused(f"the blacklist would hold {len(blacklist)} fingerprints; its bound is "
                           f"{bounds.MAX_BLACKLIST}")
        return dataclasses.replace(state, blacklist=blacklist)
    if isinstance(command, BlacklistRemove):
        present = [fp for fp in command.fingerprints if fp in state.blacklist]
        if not present:
            raise _Refused("none of these fingerprints is blacklisted")
        return dataclasses.replace(state, blacklist={fp: e for fp, e in state.blacklist.items()
                                                     if fp not in set(present)})
    if isinstance(command, SetConflictRules):
        rules = dict(state.conflict_rules)
        rules[command.kind] = ConflictRules(command.default, dict(command.by_reason))
        return dataclasses.replace(state, conflict_rules=rules)
    if isinstance(command, SetRouting):
        routing = dict(state.routing)
        routing[command.node] = Routing(command.weight, command.drain, command.read_only, command.zone)
        if len(routing) > bounds.MAX_ROUTES:
            raise _Refused(f"routing is set for {bounds.MAX_ROUTES} nodes, its bound")
        return dataclasses.replace(state, routing=routing)
    if isinstance(command, PutAdmin):
        admins = dict(state.admins)
        admins[command.name] = Admin(command.token_sha256, actor, token, command.key)
        if len(admins) > bounds.MAX_ADMINS:
            raise _Refused(f"there are {bounds.MAX_ADMINS} admins, the bound; remove one first")
        keys = dict(state.admin_keys)
        if command.key:
            if keys.get(command.key, command.name) != command.name:
                raise _Refused(f"that token is {keys[command.key]}'s (each admin needs its own)")
            keys[command.key] = command.name
        if len(keys) > bounds.MAX_ADMIN_KEYS:
            raise _Refused(f"{bounds.MAX_ADMIN_KEYS} admin keys were set, the bound")
        replaced = state.admins.get(command.name)
        retired = _retire(state, replaced.key if replaced is not None else b"", proposal.hlc)
        retired.pop(command.key, None)  # the same token set again is current again
        return dataclasses.replace(state, admins=admins, admin_keys=keys,
                                   admin_keys_retired=retired)
    if isinstance(command, RemoveAdmin):
        if command.name not in state.admins:
            raise _Refused(f"no admin is named {command.name}")
        if len(state.admins) == 1:
            raise _Refused(f"{command.name} is the last admin; add another one first")
        retired = _retire(state, state.admins[command.name].key, proposal.hlc)
        return dataclasses.replace(state, admins={n: a for n, a in state.admins.items() if n != command.name},
                                   admin_keys_retired=retired)
    if isinstance(command, ResolveConflict):
        earlier = state.resolutions.get(command.conflict_id)
        if earlier is not None:
            raise _Refused(f"conflict {command.conflict_id} was resolved at {earlier.token} "
                           f"(keep {earlier.keep.value})")
        resolutions = dict(state.resolutions)
        resolutions[command.conflict_id] = Resolution(command.fingerprint, command.keep, actor, token)
        if len(resolutions) > bounds.MAX_RESOLUTIONS:
            oldest = min(resolutions, key=lambda cid: resolutions[cid].token)
            del resolutions[oldest]
        return dataclasses.replace(state, resolutions=resolutions)
    if isinstance(command, AuditDelete | ResetPeerKey):
        return state  # no policy: an audit entry (and, for ResetPeerKey, each node's effect)
    if isinstance(command, ChangeMembership):
        raise _Refused("membership changes are proposed as configuration entries, not commands")
    raise _Refused(f"command {command.OP} has no apply rule")


def _audit(state: PolicyState, op: str, actor: str, node: str, hlc: int, outcome: str,
           detail: str) -> AuditEntry:
    return AuditEntry(state.audit_total + 1, state.token, op, actor, node, hlc, outcome,
                      detail[: bounds.MAX_DETAIL_CHARS])


def _with_audit(state: PolicyState, entry: AuditEntry) -> PolicyState:
    audit = (*state.audit, entry)[-bounds.MAX_AUDIT:]
    return dataclasses.replace(state, audit=audit, audit_total=entry.seq)
