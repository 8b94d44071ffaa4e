"""Replication endpoints: /cluster/sync*, /cluster/repair, /cluster/conflicts and key deletes.

    GET    /cluster/sync/status        merkle root, key/tombstone counts, per-peer sync status
    POST   /cluster/sync               anti-entropy now (?peer=NODE_ID for one peer)   [admin]
    POST   /cluster/repair             rebuild the Merkle tree from the records, then sync [admin]
    GET    /cluster/conflicts          records where an add was concurrent with a delete, each
                                       with its id and the rule that applies
    POST   /cluster/conflicts/{id}/resolve  {"keep": "delete"|"update"}: proposes a
                                       ResolveConflict through the control plane          [admin]
    DELETE /cluster/keys/<fingerprint> tombstone a key (?reason=...&actor=...)           [admin]

A delete names the admin the token authenticates (a named admin's name; for the bootstrap
token, ?actor= or "admin") and, with a control plane, is queued for the audit trail. When the
token is a named admin's of the cluster policy, the delete is also signed by that admin's key
(meshkp/keys/adminkey.py), which peers check against their admin table; in a cluster whose
admins have keys, a token that is no named admin's cannot delete (403): peers would refuse it.

x-consistency on POST /pks/add is the add handler's (meshkp/http/consistency.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import nacl.signing
from aiohttp import web

from crdt.vclock import VersionVector
from meshkp.control.policy.commands import ConflictKind, Keep, ResolveConflict
from meshkp.control.policy.state import PolicyState
from meshkp.errors import InvalidCommand, InvalidRequest, NotFound
from meshkp.http.auth import BOOTSTRAP_ACTOR, AdminAuth, bearer_token, require_admin
from meshkp.http.plane import ControlPlaneLike
from meshkp.keys.adminkey import admin_public_key, admin_signing_key
from meshkp.keys.policy import resolution_proof, resolution_reason
from meshkp.keys.record import KeyRecord
from meshkp.replication.deletes import conflict_json, hlc_to_int, parse_fingerprint
from meshkp.replication.replicator import Replicator

log = logging.getLogger(__name__)

# Conflicts listed by one GET /cluster/conflicts.
MAX_CONFLICTS_LISTED = 1000


def signed_resolution(replicator: Replicator, command: ResolveConflict, actor: str,
                      admin: nacl.signing.SigningKey | None = None) -> ResolveConflict:
    """`command` with this node's signed proof of it (and `admin`'s), so that every node writes
    a record its peers can check (meshkp/keys/policy.py resolution_proof); unchanged on a node
    without an identity (no cluster key: no peers)."""
    if replicator.identity is None:
        return command
    stamp = replicator.hlc.now()
    proof = resolution_proof(
        replicator.identity, command.fingerprint, command.keep is Keep.UPDATE,
        VersionVector.from_obj(dict(command.covers)), hlc_to_int(stamp.wall_ms, stamp.logical),
        resolution_reason(command.conflict_id, command.keep.value), actor, admin)
    return dataclasses.replace(command, proof=proof.encode())


class ClusterSyncHandlers:
    """The routes of one node's replication."""

    def __init__(self, replicator: Replicator, token: str | AdminAuth,
                 control: ControlPlaneLike | None = None) -> None:
        self.replicator = replicator
        self.token = token
        self.control = control

    @property
    def policy(self) -> PolicyState:
        return self.control.state if self.control is not None else PolicyState()

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/sync/status", self.status)
        app.router.add_post("/cluster/sync", self.sync)
        app.router.add_post("/cluster/repair", self.repair)
        app.router.add_get("/cluster/conflicts", self.conflicts)
        app.router.add_post("/cluster/conflicts/{id}/resolve", self.resolve)
        app.router.add_delete("/cluster/keys/{fingerprint}", self.delete)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.replicator.status())

    async def sync(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        peer = request.query.get("peer") or None
        results = await self.replicator.sync_now(peer)
        return web.json_response({"synced": results})

    async def repair(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        return web.json_response(await self.replicator.repair())

    def _rule_of(self, record: KeyRecord) -> str:
        reason = record.tombstone.reason if record.tombstone is not None else ""
        return self.policy.rule_for(ConflictKind.DELETE_UPDATE, reason).value

    async def conflicts(self, request: web.Request) -> web.Response:
        records = await self.replicator.conflicts(MAX_CONFLICTS_LISTED)
        default = self.policy.rule_for(ConflictKind.DELETE_UPDATE, "").value
        return web.json_response({
            "policy": default,
            "conflicts": [conflict_json(r, rule=self._rule_of(r)) for r in records],
        })

    async def resolve(self, request: web.Request) -> web.Response:
        actor = require_admin(request, self.token)
        conflict_id = request.match_info["id"]
        try:
            body = await request.json()
            keep = Keep(body.get("keep"))
        except (ValueError, AttributeError):
            raise InvalidRequest('send {"keep": "delete"} or {"keep": "update"}') from None
        if self.control is None:
            raise web.HTTPServiceUnavailable(text="this node runs no control plane: conflicts are "
                                                  "resolved through its log\n")
        self._refuse_if_resolved(conflict_id)
        try:
            record = await self._conflict(conflict_id)
        finally:
            # The resolution may have applied while the conflicts were read (it then also
            # leaves the list): still a 409, not a 404 or the proposal check's 400.
            self._refuse_if_resolved(conflict_id)
        command = ResolveConflict(conflict_id, record.fingerprint, keep, record.vv.to_obj())
        try:
            command.validate()
        except InvalidCommand as exc:
            raise InvalidRequest(str(exc)) from None
        admin = self._admin_signer(request, "conflict resolutions")
        command = signed_resolution(self.replicator, command, actor, admin)
        applied = await self.control.propose(command, actor)
        audit = applied.audit
        return web.Response(text=json.dumps({
            "id": conflict_id, "fingerprint": record.fingerprint.hex().upper(),
            "keep": keep.value, "accepted": applied.accepted,
            "token": str(applied.token), "detail": audit.detail if audit is not None else "",
        }, sort_keys=True) + "\n", status=200 if applied.accepted else 409,
            content_type="application/json")

    def _refuse_if_resolved(self, conflict_id: str) -> None:
        earlier = self.policy.resolutions.get(conflict_id)
        if earlier is not None:
            raise web.HTTPConflict(text=f"conflict {conflict_id} was resolved at {earlier.token} "
                                        f"(keep {earlier.keep.value})\n")

    async def _conflict(self, conflict_id: str) -> KeyRecord:
        for record in await self.replicator.conflicts(MAX_CONFLICTS_LISTED):
            conflict = record.conflict
            if conflict is not None and conflict.id == conflict_id:
                return record
        raise NotFound(f"no conflict {conflict_id[:80]} on this node: list them with GET "
                       "/cluster/conflicts (a conflict that changed since has another id)")

    def _admin_signer(self, request: web.Request,
                      what: str = "deletes") -> nacl.signing.SigningKey | None:
        """The signing key of the named admin whose token the request carries; None where the
        cluster's admins have no keys (no control plane yet, or set by older nodes); 403 for
        another token (this node's bootstrap token) where they do, since peers would refuse
        a delete no admin signed."""
        given = bearer_token(request) or b""
        state = self.policy
        name = state.admin_keys.get(admin_public_key(given))
        if name is not None and name in state.admins and state.admins[name].key:
            return admin_signing_key(given)
        if self.replicator.identity is None or not any(a.key for a in state.admins.values()):
            return None  # no peers to convince (no cluster key), or admins without keys
        raise web.HTTPForbidden(
            text=f"{what} replicate only when a named admin signs them, and this token is no "
                 "named admin's (it is this node's bootstrap token): use a named admin's token "
                 "(meshkp admins add NAME --new-token-file F), or the founding node's bootstrap "
                 "token, which is the admin 'admin'\n")

    async def delete(self, request: web.Request) -> web.Response:
        admin = require_admin(request, self.token)
        fingerprint = parse_fingerprint(request.match_info["fingerprint"])
        params = dict(request.query)
        if request.can_read_body and request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise InvalidRequest("the body is not JSON: send {\"reason\": ..., \"actor\": ...}") from None
            if isinstance(body, dict):
                params.update({k: str(v) for k, v in body.items() if k in ("reason", "actor")})
        reason = params.get("reason", "").strip()
        # A named admin is who deleted; the bootstrap token may still say who it is.
        actor = admin if admin != BOOTSTRAP_ACTOR else (params.get("actor", "").strip() or admin)
        if not reason:
            raise InvalidRequest("a delete needs a reason: ?reason=... (kept in the tombstone)")
        outcome = await self.replicator.delete(fingerprint, reason, actor,
                                               audit=self.control is not None,
                                               admin=self._admin_signer(request))
        return web.json_response({
            "fingerprint": fingerprint.hex().upper(),
            "deleted": True,
            "changed": outcome.changed,
            "existed": outcome.existed,
            "vv": outcome.record.vv.to_obj(),
            "conflict": outcome.record.conflict is not None,
        })
