"""PolicyState: the cluster policy, the resolutions and the audit trail, as of one log index.

Immutable: apply() returns a new state, so the driver can hand the current one to readers
(HTTP handlers, the key service's filters) while the next entry is applied. Mappings are
never mutated after construction.

`version` counts applied policy changes (limits, blacklist, conflict rules, routing, admins):
two nodes at the same version hold the same policy, whatever else they have applied. `token`
is the fencing token of the last applied entry, `policy_token` that of the change that made
the current version.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshkp.control.policy.commands import ConflictKind, Keep, Rule
from meshkp.control.raft.types import ZERO_TOKEN, FencingToken
from meshkp.limits import Limits


@dataclass(frozen=True, slots=True)
class ConflictRules:
    """How conflicts of one kind are decided: a default, overridden by the tombstone's reason."""

    default: Rule = Rule.DELETE_WINS
    by_reason: Mapping[str, Rule] = field(default_factory=dict)

    def rule_for(self, reason: str) -> Rule:
        return self.by_reason.get(reason, self.default)


DEFAULT_RULES: Mapping[ConflictKind, ConflictRules] = {ConflictKind.DELETE_UPDATE: ConflictRules()}


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    reason: str
    actor: str
    token: FencingToken


@dataclass(frozen=True, slots=True)
class Routing:
    """What load balancers and clients are told about one node (PUT /cluster/routing)."""

    weight: int = 100
    drain: bool = False  # /cluster/health answers 503, so load balancers take it out
    read_only: bool = False  # uploads get 503 naming a writable node
    zone: str = ""


DEFAULT_ROUTING = Routing()


@dataclass(frozen=True, slots=True)
class Admin:
    """A named admin identity: any node accepts its token (compared by SHA-256); `key` is the
    public key derived from the token (meshkp/keys/adminkey.py; b"" if set by an older node)."""

    token_sha256: bytes
    actor: str
    token: FencingToken
    key: bytes = b""


@dataclass(frozen=True, slots=True)
class Resolution:
    fingerprint: bytes
    keep: Keep
    actor: str
    token: FencingToken


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One committed cluster operation: who, what, when, from which node, under which token.

    `seq` numbers entries over the cluster's life (paging); `hlc` is the proposing node's
    stamp; `outcome` is "applied" or "ignored" (then `detail` says why).
    """

    seq: int
    token: FencingToken
    op: str
    actor: str
    node: str
    hlc: int
    outcome: str
    detail: str


APPLIED = "applied"
IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class PolicyState:
    version: int = 0
    token: FencingToken = ZERO_TOKEN
    policy_token: FencingToken = ZERO_TOKEN
    limits: Limits = Limits()
    blacklist: Mapping[bytes, BlacklistEntry] = field(default_factory=dict)
    conflict_rules: Mapping[ConflictKind, ConflictRules] = field(default_factory=lambda: dict(DEFAULT_RULES))
    routing: Mapping[str, Routing] = field(default_factory=dict)
    admins: Mapping[str, Admin] = field(default_factory=dict)
    # Every admin public key ever set -> its admin's name, kept when the admin's token is
    # replaced or removed, so deletes it signed stay provable (bounds.MAX_ADMIN_KEYS)...
    admin_keys: Mapping[bytes, str] = field(default_factory=dict)
    # ... but only those signed before then: key -> the HLC stamp of the entry that replaced or
    # removed it. A token stolen after its rotation signs nothing that stands.
    admin_keys_retired: Mapping[bytes, int] = field(default_factory=dict)
    resolutions: Mapping[str, Resolution] = field(default_factory=dict)
    audit: tuple[AuditEntry, ...] = ()
    audit_total: int = 0

    def is_blacklisted(self, fingerprint: bytes) -> bool:
        return fingerprint in self.blacklist

    def rule_for(self, kind: ConflictKind, reason: str) -> Rule:
        return self.conflict_rules.get(kind, ConflictRules()).rule_for(reason)

    def routing_of(self, node: str) -> Routing:
        return self.routing.get(node, DEFAULT_ROUTING)

    @property
    def has_admin_keys(self) -> bool:
        """True once some admin has a key: deletes must then be signed by one."""
        return bool(self.admin_keys)

    def rule_lifts(self, reason: str) -> bool:
        """True if a delete of `reason` concurrent with an update is resolved for the update."""
        return self.rule_for(ConflictKind.DELETE_UPDATE, reason) is Rule.UPDATE_WINS

    def admin_at(self, key: bytes, hlc: int) -> str | None:
        """The admin whose key `key` was at HLC stamp `hlc` (before its retirement), or None."""
        name = self.admin_keys.get(key)
        retired = self.admin_keys_retired.get(key)
        return name if name is not None and (retired is None or hlc < retired) else None

    def admin_for(self, token_sha256: bytes) -> str | None:
        """The name of the admin whose token hashes to `token_sha256`, or None."""
        found = None
        for name, admin in sorted(self.admins.items()):
            if hmac.compare_digest(admin.token_sha256, token_sha256):
                found = name  # no early exit: the time taken does not say which admin matched
        return found

    def audit_page(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Audit entries with seq > after_seq, oldest first, at most `limit` (GET /cluster/audit)."""
        first = self.audit[0].seq if self.audit else 0
        start = max(0, after_seq + 1 - first)
        return list(self.audit[start: start + max(0, limit)])
