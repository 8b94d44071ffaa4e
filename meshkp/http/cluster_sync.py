"""Replication endpoints: /cluster/sync*, /cluster/repair, /cluster/conflicts and key deletes.

    GET    /cluster/sync/status        merkle root, key/tombstone counts, per-peer sync status
    POST   /cluster/sync               anti-entropy now (?peer=NODE_ID for one peer)   [admin]
    POST   /cluster/repair             rebuild the Merkle tree from the records, then sync [admin]
    GET    /cluster/conflicts          records where an add was concurrent with a delete
    DELETE /cluster/keys/<fingerprint> tombstone a key (?reason=...&actor=...)           [admin]

x-consistency on POST /pks/add is the add handler's (meshkp/http/consistency.py).
"""

from __future__ import annotations

import logging

from aiohttp import web

from meshkp.errors import InvalidRequest
from meshkp.http.auth import require_admin
from meshkp.replication.deletes import conflict_json, parse_fingerprint
from meshkp.replication.replicator import Replicator

log = logging.getLogger(__name__)

# Conflicts listed by one GET /cluster/conflicts.
MAX_CONFLICTS_LISTED = 1000


class ClusterSyncHandlers:
    """The routes of one node's replication."""

    def __init__(self, replicator: Replicator, token: str) -> None:
        self.replicator = replicator
        self.token = token

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/sync/status", self.status)
        app.router.add_post("/cluster/sync", self.sync)
        app.router.add_post("/cluster/repair", self.repair)
        app.router.add_get("/cluster/conflicts", self.conflicts)
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

    async def conflicts(self, request: web.Request) -> web.Response:
        records = await self.replicator.conflicts(MAX_CONFLICTS_LISTED)
        return web.json_response(
            {"policy": "delete-wins", "conflicts": [conflict_json(r) for r in records]}
        )

    async def delete(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
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
        actor = params.get("actor", "").strip() or "admin"
        if not reason:
            raise InvalidRequest("a delete needs a reason: ?reason=... (kept in the tombstone)")
        outcome = await self.replicator.delete(fingerprint, reason, actor)
        return web.json_response({
            "fingerprint": fingerprint.hex().upper(),
            "deleted": True,
            "changed": outcome.changed,
            "existed": outcome.existed,
            "vv": outcome.record.vv.to_obj(),
            "conflict": outcome.record.conflict is not None,
        })
