"""Replication endpoints: /cluster/sync*, /cluster/repair, /cluster/conflicts, key deletes,
and x-consistency on POST /pks/add.

    GET    /cluster/sync/status        merkle root, key/tombstone counts, per-peer sync status
    POST   /cluster/sync               anti-entropy now (?peer=NODE_ID for one peer)   [admin]
    POST   /cluster/repair             rebuild the Merkle tree from the records, then sync [admin]
    GET    /cluster/conflicts          records where an add was concurrent with a delete
    DELETE /cluster/keys/<fingerprint> tombstone a key (?reason=...&actor=...)           [admin]

x-consistency (header `X-Consistency`, or an `x-consistency` query or form variable) is applied
by a middleware around POST /pks/add: the add handler runs unchanged, the keys it changed are
collected through the service's write listener (same task, via a context variable), and the
reply waits for that many nodes to acknowledge them; short of it after the timeout, the reply
is 503 and says how many did (the write stays stored and keeps spreading). The form variable
is read through `read_add_form`, the one reader of an upload body (bounded, cached per
request): its errors (413, unparseable body) propagate to the error middleware as they would
from the add handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from meshkp.errors import InvalidRequest
from meshkp.http.auth import require_admin
from meshkp.http.hkp import read_add_form
from meshkp.keys.ingest import IngestResult, Status
from meshkp.limits import Limits
from meshkp.replication.consistency import parse_level
from meshkp.replication.deletes import conflict_json, parse_fingerprint
from meshkp.replication.replicator import Replicator

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The fingerprints the current request's upload changed or found unchanged (per POST /pks/add).
_CHANGED: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar(
    "meshkp_changed_keys", default=None
)
CONSISTENCY_HEADER = "X-Consistency"
# Conflicts listed by one GET /cluster/conflicts.
MAX_CONFLICTS_LISTED = 1000


def collect_changes(result: IngestResult) -> None:
    """KeyService write listener: note the keys this request changed or already held."""
    changed = _CHANGED.get()
    if changed is not None:
        changed.extend(result.records)
        # A key already stored here (a retry after a 503, or another client's upload still
        # waiting for its acks) is not known to be on `quorum` nodes: wait for its acks too.
        changed.extend(bytes.fromhex(o.fingerprint) for o in result.outcomes
                       if o.status is Status.UNCHANGED and o.fingerprint)


class ClusterSyncHandlers:
    """Routes and the consistency middleware of one node's replication."""

    def __init__(
        self, replicator: Replicator, token: str, limits: Limits, default_consistency: str = "one"
    ) -> None:
        self.replicator = replicator
        self.token = token
        self.limits = limits
        self.default_consistency = default_consistency

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/sync/status", self.status)
        app.router.add_post("/cluster/sync", self.sync)
        app.router.add_post("/cluster/repair", self.repair)
        app.router.add_get("/cluster/conflicts", self.conflicts)
        app.router.add_delete("/cluster/keys/{fingerprint}", self.delete)
        app.middlewares.append(self.consistency_middleware)

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

    @web.middleware
    async def consistency_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/pks/add":
            return await handler(request)
        level = parse_level(await self._asked_level(request), self.default_consistency)
        if level == "one":
            return await handler(request)
        changed: list[bytes] = []
        token = _CHANGED.set(changed)
        try:
            response = await handler(request)
        finally:
            _CHANGED.reset(token)
        if response.status != 200 or not changed:
            return response
        acked, needed = await self.replicator.wait_for(list(dict.fromkeys(changed)), level)
        response.headers["X-Consistency-Acks"] = f"{acked}/{needed}"
        if acked >= needed:
            return response
        message = (
            f"x-consistency={level} not reached: {acked} of {needed} nodes acknowledged within "
            f"{self.replicator.config.consistency_timeout_s:g} s; the write is stored on this node "
            "and keeps spreading"
        )
        log.warning("event=consistency_timeout level=%s acked=%d needed=%d", level, acked, needed)
        body = getattr(response, "text", None) or ""
        if response.content_type == "application/json":
            return web.json_response(
                {"status": 503, "error": message, "acked": acked, "needed": needed,
                 "result": json.loads(body) if body else None},
                status=503, headers={"X-Consistency-Acks": f"{acked}/{needed}"},
            )
        return web.Response(status=503, text=f"{message}\n{body}", content_type="text/plain",
                            headers={"X-Consistency-Acks": f"{acked}/{needed}"})

    async def _asked_level(self, request: web.Request) -> str | None:
        """The x-consistency asked for: header, query variable, then form field."""
        asked = request.headers.get(CONSISTENCY_HEADER) or request.query.get("x-consistency")
        if asked:
            return asked
        # Raises LimitExceeded/InvalidRequest for a bad body: the error middleware maps them.
        form = await read_add_form(request, self.limits)
        value = form.get("x-consistency")
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value if isinstance(value, str) else None
