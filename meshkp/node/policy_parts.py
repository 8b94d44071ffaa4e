"""The effects of the applied cluster policy on this node's data plane.

The control plane (meshkp/control: the Raft log and the PolicyState every node applies from
it) decides; `PolicyEffects` makes each applied state and entry true here, driven only by
`PolicyState` and `Applied` values:
- limits: `Committer.limits` (which the parser reads too) takes the policy's limits, for the
  next commit;
- blacklist: the key service hides those fingerprints and refuses their upload
  (meshkp/keys/policy.py says why the records stay and roots stay equal);
- routing: read per request by the RoutingGate (drain: agent check "drain", health 503 after the
  grace period; read-only: uploads 503);
- admins: read per request by AdminAuth (any named admin's token is accepted);
- resolutions: every node writes the decision's record update (`resolution_record`) through
  the committer, in log order, so replicas converge on it;
- conflict rules: the leader proposes a resolution for each conflict a rule decides (one
  proposer, so one audit entry each; a conflict already resolved or in flight is skipped);
- admin deletes: the audit outbox is drained into AuditDelete entries once the log answers.

Until a control plane is attached (`attach`) the node runs under the empty policy: nothing
is filtered, and what must go through the log answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from crdt.vclock import VersionVector
from meshkp.control.policy.apply import Applied
from meshkp.control.policy.commands import (
    AuditDelete,
    Command,
    ConflictKind,
    Keep,
    Proposal,
    ResetPeerKey,
    ResolveConflict,
    Rule,
    SetConflictRules,
)
from meshkp.control.policy.state import PolicyState
from meshkp.errors import MeshkpError, StoreError
from meshkp.http.admins import AdminHandlers
from meshkp.http.auth import AdminAuth
from meshkp.http.cluster_sync import signed_resolution
from meshkp.http.peer_keys import PeerKeyHandlers
from meshkp.http.plane import ControlPlaneLike
from meshkp.http.routing import ROUTING_KEY, RoutingGate
from meshkp.keys.commit import POLICY, Commit, Committer, Origin, joining
from meshkp.keys.deleteproof import DeleteProof
from meshkp.keys.policy import DataPolicy, resolution_reason, resolution_record
from meshkp.keys.record import KeyRecord
from meshkp.keys.service import KeyService
from meshkp.membership.service import MembershipService
from meshkp.net.peerkeys import PeerKeys
from meshkp.replication.deletes import PendingAudit, audited, pending_audits
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.swim.types import Status

log = logging.getLogger(__name__)

EMPTY_POLICY = PolicyState()
# How often the leader looks for conflicts a rule decides, and the outbox is retried, when
# nothing kicks them earlier (a conflict committed here, a rule change, a delete).
RESCAN_S = 5.0
# Conflicts examined per scan, and outbox entries proposed per round.
SCAN_CONFLICTS = 1000
OUTBOX_BATCH = 100
RULE_ACTOR = "policy"  # the actor of automatic resolutions (the rule is in the audit detail)


class PolicyEffects:
    """Applies the control plane's policy here; also the ControlPlaneLike the endpoints use."""

    def __init__(self, node_id: str, committer: Committer, keys: KeyService,
                 replicator: Replicator, store: AsyncStore,
                 membership: MembershipService | None = None, *,
                 rescan_s: float = RESCAN_S, drain_grace_s: float = 0.0,
                 peer_keys: PeerKeys | None = None) -> None:
        self.node_id = node_id
        # The node's id -> key directory (its transports'), for ResetPeerKey; None: no mesh.
        self.peer_keys = peer_keys
        self.committer = committer
        self.keys = keys
        self.replicator = replicator
        self.store = store
        self.membership = membership
        self.rescan_s = rescan_s
        self.control: ControlPlaneLike | None = None
        self.gate = RoutingGate(node_id, lambda: self.state, self._writable_peers,
                                drain_grace_s=drain_grace_s)
        self._observers: list[Callable[[Applied], None]] = []
        self._resolutions: asyncio.Queue[Proposal] = asyncio.Queue()
        self._inflight: set[str] = set()
        # One drain and one rules pass at a time (a kick and an explicit call must not both
        # propose the same entry).
        self._outbox_lock = asyncio.Lock()
        self._rules_lock = asyncio.Lock()
        self._kick_rules = asyncio.Event()
        self._kick_outbox = asyncio.Event()
        self._blacklist_version = -1
        committer.observe(self._committed)

    # -- ControlPlaneLike (what the endpoints call) --------------------------------------------

    @property
    def state(self) -> PolicyState:
        return self.control.state if self.control is not None else EMPTY_POLICY

    @property
    def is_leader(self) -> bool:
        return self.control is not None and self.control.is_leader

    def observe(self, fn: Callable[[Applied], None]) -> None:
        self._observers.append(fn)

    async def propose(self, command: Command, actor: str, *, timeout: float | None = None) -> Applied:
        if self.control is None:
            raise web.HTTPServiceUnavailable(
                text=f"node {self.node_id} runs no control plane yet: cluster policy changes go "
                     "through its log; retry once it runs\n", headers={"Retry-After": "5"})
        return await self.control.propose(command, actor, timeout=timeout)

    # -- wiring --------------------------------------------------------------------------------

    def auth(self, token: str) -> AdminAuth:
        """The admin check of every endpoint: the bootstrap token and the policy's admins."""
        return AdminAuth(token, lambda: self.state)

    def register(self, app: web.Application, auth: AdminAuth) -> None:
        """The routing gate (read by /pks/add and /cluster/health) and /cluster/admins."""
        app[ROUTING_KEY] = self.gate
        AdminHandlers(auth, self).register(app)
        PeerKeyHandlers(auth, self).register(app)

    def attach(self, control: ControlPlaneLike) -> None:
        """Follow `control` from now on: its current state at once, then every applied entry
        (the plane replays its log at start, so resolutions are written again: idempotent)."""
        self.control = control
        state = control.state
        if state.version > 0 and state.limits != self.committer.limits:
            # The node's own --limit options only seed a new cluster; the policy wins after.
            log.warning("event=limits_from_policy version=%d hint=the_node_options_differ_from_"
                        "the_cluster_policy_change_them_with_PUT_/cluster/policy", state.version)
        self._apply_state(state)
        control.observe(self.on_applied)
        self._kick_rules.set()
        self._kick_outbox.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PolicyEffects]:
        """The background work (resolution writes, rules, outbox); stopped on exit."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._write_resolutions(), name="policy-resolutions"),
                 loop.create_task(self._apply_rules(), name="policy-rules"),
                 loop.create_task(self._drain_outbox(), name="policy-audit-outbox")]
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- applied entries -----------------------------------------------------------------------

    def on_applied(self, applied: Applied) -> None:
        """Called by the control plane on the event loop, in log order."""
        self._apply_state(applied.state)
        proposal = applied.proposal
        if applied.accepted and proposal is not None:
            if isinstance(proposal.command, ResolveConflict):
                self._resolutions.put_nowait(proposal)
            elif isinstance(proposal.command, SetConflictRules):
                self._kick_rules.set()
            elif isinstance(proposal.command, ResetPeerKey):
                self._reset_peer_key(proposal, applied)
        for fn in self._observers:
            fn(applied)

    def _reset_peer_key(self, proposal: Proposal, applied: Applied) -> None:
        """Forget (or re-pin) the key this node pinned for a node id, as the operator decided."""
        command = proposal.command
        assert isinstance(command, ResetPeerKey)
        if self.peer_keys is None:
            return
        old = self.peer_keys.reset(command.node, command.key)
        log.warning("event=peer_key_reset node=%r old_key=%s new_key=%s actor=%r origin=%s "
                    "token=%s", command.node, old[:8].hex() if old else "-",
                    command.key[:8].hex() if command.key else "first_seen", proposal.actor,
                    proposal.origin, applied.token)

    def _apply_state(self, state: PolicyState) -> None:
        self.gate.draining()  # stamps drain_since when the change applies, not when polled
        if state.limits != self.committer.limits:
            self.committer.limits = state.limits
            log.info("event=policy_limits_applied version=%d", state.version)
        if state.version != self._blacklist_version:
            self._blacklist_version = state.version
            blacklist = {fp: entry.reason for fp, entry in state.blacklist.items()}
            if blacklist != self.keys.policy.blacklist or state.version != self.keys.policy.version:
                self.keys.set_policy(DataPolicy(state.version, blacklist))

    # -- resolutions: every node writes the decision ---------------------------------------------

    async def _write_resolutions(self) -> None:
        while True:
            proposal = await self._resolutions.get()
            try:
                await self.write_resolution(proposal)
            except MeshkpError as exc:  # the store failing; the next start replays the entry
                log.error("event=resolution_write_failed error=%r", exc)

    async def write_resolution(self, proposal: Proposal) -> None:
        """Join the resolution's record update into the store (idempotent)."""
        command = proposal.command
        assert isinstance(command, ResolveConflict)
        keep_update = command.keep is Keep.UPDATE
        covers = VersionVector.from_obj(dict(command.covers))
        reason = resolution_reason(command.conflict_id, command.keep.value)
        proof = _resolution_proof(command, keep_update, covers, reason, proposal.actor)
        record = resolution_record(command.fingerprint, keep_update, covers, proposal.hlc,
                                   reason, proposal.actor, proof)
        result = await self.committer.run(self.store, joining([record]), POLICY)
        log.info("event=conflict_resolution_applied id=%s fingerprint=%s keep=%s changed=%s",
                 command.conflict_id, command.fingerprint.hex(), command.keep.value,
                 bool(result.changes))

    # -- conflict rules: the leader proposes ------------------------------------------------------

    def _committed(self, commit: Commit) -> None:
        if commit.source.origin is Origin.DELETE:
            self._kick_outbox.set()
        if any(_in_conflict(state) for state in commit.states.values()):
            self._kick_rules.set()

    async def _apply_rules(self) -> None:
        while True:
            await _wait(self._kick_rules, self.rescan_s)
            if self.is_leader:
                try:
                    await self.resolve_by_rules()
                except (MeshkpError, TimeoutError) as exc:
                    log.warning("event=conflict_rules_deferred error=%r", exc)

    async def resolve_by_rules(self) -> int:
        """Propose a resolution for each listed conflict a rule decides; how many were proposed."""
        async with self._rules_lock:
            return await self._resolve_by_rules()

    async def _resolve_by_rules(self) -> int:
        proposed = 0
        for record in await self.replicator.conflicts(SCAN_CONFLICTS):
            conflict = record.conflict
            if conflict is None:
                continue
            state = self.state
            rule = state.rule_for(ConflictKind.DELETE_UPDATE, conflict.tombstone.reason)
            if rule is Rule.MANUAL or conflict.id in state.resolutions or conflict.id in self._inflight:
                continue
            keep = Keep.DELETE if rule is Rule.DELETE_WINS else Keep.UPDATE
            command = signed_resolution(
                self.replicator,
                ResolveConflict(conflict.id, record.fingerprint, keep, record.vv.to_obj()),
                f"{RULE_ACTOR} {rule.value}")
            self._inflight.add(conflict.id)
            try:
                await self.propose(command, f"{RULE_ACTOR} {rule.value}")
            finally:
                self._inflight.discard(conflict.id)
            proposed += 1
        return proposed

    # -- admin deletes: the audit outbox ---------------------------------------------------------

    async def _drain_outbox(self) -> None:
        while True:
            await _wait(self._kick_outbox, self.rescan_s)
            if self.control is None:
                continue
            try:
                await self.drain_outbox()
            except (MeshkpError, TimeoutError) as exc:  # no leader yet: the entries wait, durably
                log.info("event=audit_outbox_deferred error=%r", exc)

    async def drain_outbox(self) -> int:
        """Propose an AuditDelete for each queued delete; drop each once applied."""
        async with self._outbox_lock:
            return await self._drain_outbox_locked()

    async def _drain_outbox_locked(self) -> int:
        drained = 0
        while True:
            batch: list[PendingAudit] = await self.store.read(
                lambda store: pending_audits(store, OUTBOX_BATCH))
            if not batch:
                return drained
            for pending in batch:
                command = AuditDelete(pending.fingerprint, pending.reason, pending.hlc, pending.node)
                await self.propose(command, pending.actor)
                await self.store.run_exclusive(functools.partial(audited, pending=pending))
                drained += 1

    # -- routing ---------------------------------------------------------------------------------

    def _writable_peers(self) -> dict[str, str]:
        if self.membership is None:
            return {}
        return {m.node_id: m.meta["http"] for m in self.membership.members()
                if m.status == Status.ALIVE and m.node_id != self.node_id and m.meta.get("http")}


def _in_conflict(state: Any) -> bool:
    if isinstance(state, KeyRecord):
        return state.conflict is not None
    return bool(getattr(state, "conflict", False))


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` passes; then clear it (a bounded wait)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    event.clear()


def _resolution_proof(command: ResolveConflict, keep_update: bool, covers: VersionVector,
                      reason: str, actor: str) -> DeleteProof | None:
    """The proof the log entry carries, if it is one of exactly this resolution (else None,
    logged: the record is written unsigned, and peers that check proofs refuse it)."""
    if not command.proof:
        return None
    try:
        proof = DeleteProof.decode(command.proof, lift=keep_update)
    except StoreError as exc:
        log.warning("event=resolution_proof_invalid id=%s error=%s", command.conflict_id, exc)
        return None
    expected = ("", 0) if keep_update else (reason, proof.hlc)
    if (proof.seen != covers or proof.actor != actor or (proof.reason, proof.hlc) != expected
            or not proof.holds(command.fingerprint)):
        log.warning("event=resolution_proof_invalid id=%s error=the_proof_is_not_of_this_"
                    "resolution", command.conflict_id)
        return None
    return proof
