"""Membership endpoints on the node's HTTP port.

    GET  /cluster/nodes    {"nodes": [{"id", "addr", "http", "status", "incarnation", "meta"}]}
    GET  /cluster/status   this node's id, incarnation, counts by status, health, frame counters
    GET  /cluster/health   200 while a majority of known (not-left) members is alive, else 503
    POST /cluster/join     {"peers": ["host:port" | "dns:NAME" | "srv:NAME", ...]}     [admin]
    POST /cluster/leave    broadcast "left", then stop the node (the process exits)     [admin]

Admin calls need `Authorization: Bearer <token>` (meshkp/http/auth.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from meshkp.errors import ConfigError, InvalidRequest
from meshkp.http.auth import require_admin
from meshkp.membership.service import MembershipService

log = logging.getLogger(__name__)

# POST /cluster/join: peers per call and characters per peer spec. Each peer costs a DNS lookup
# and a TCP push-pull; an unbounded list would let one call fan out without limit.
MAX_JOIN_PEERS = 64
MAX_PEER_CHARS = 300
MAX_JOIN_BODY = 64 * 1024


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, sort_keys=True) + "\n", status=status,
                        content_type="application/json")


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """The whole body (content.read(n) returns only what has arrived); InvalidRequest past limit."""
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            return bytes(raw)
        raw += chunk
    raise InvalidRequest(f"join body larger than {limit} bytes")


class ClusterHandlers:
    """The /cluster/* membership routes of one node."""

    def __init__(
        self,
        membership: MembershipService,
        token: str,
        on_leave: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.membership = membership
        self.token = token
        self._on_leave = on_leave
        # Kept so the leave outlives its request and close() can wait for it (no fire-and-forget).
        self._leave_task: asyncio.Task[None] | None = None

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/nodes", self.nodes)
        app.router.add_get("/cluster/status", self.status)
        app.router.add_get("/cluster/health", self.health)
        app.router.add_post("/cluster/join", self.join)
        app.router.add_post("/cluster/leave", self.leave)

    async def close(self) -> None:
        """Called on node stop: let a running leave broadcast finish (it is bounded)."""
        task = self._leave_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.gather(task, return_exceptions=True)

    async def nodes(self, request: web.Request) -> web.Response:
        members = sorted(self.membership.members(), key=lambda m: m.node_id)
        return _json({"self": self.membership.node_id,
                      "nodes": [m.to_json() for m in members]})

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.membership.status())

    async def health(self, request: web.Request) -> web.Response:
        healthy = self.membership.healthy()
        body = {"healthy": healthy, "counts": self.membership.counts(),
                "id": self.membership.node_id}
        return _json(body, 200 if healthy else 503)

    async def join(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        if request.content_length is not None and request.content_length > MAX_JOIN_BODY:
            raise InvalidRequest(f"join body larger than {MAX_JOIN_BODY} bytes")
        raw = await _read_bounded(request, MAX_JOIN_BODY)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # "[[[..." nests too deep
            raise InvalidRequest('join body must be JSON: {"peers": ["host:port", ...]}') from exc
        peers = body.get("peers") if isinstance(body, dict) else None
        if (not isinstance(peers, list) or not peers or len(peers) > MAX_JOIN_PEERS
                or not all(isinstance(p, str) and 0 < len(p) <= MAX_PEER_CHARS for p in peers)):
            raise InvalidRequest(
                f'"peers" must be a list of 1-{MAX_JOIN_PEERS} strings like "host:port"')
        try:
            joined = await self.membership.join_specs(peers)
        except ConfigError as exc:
            raise InvalidRequest(str(exc)) from exc
        log.info("event=join_requested peers=%s answered=%d", ",".join(peers), joined)
        # 502: we are fine, but none of the peers we were pointed at answered.
        return _json({"joined": joined, "peers": peers}, 200 if joined else 502)

    async def leave(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        if self._leave_task is None:
            self._leave_task = asyncio.get_running_loop().create_task(self._leave(),
                                                                      name="cluster-leave")
        return _json({"leaving": True, "id": self.membership.node_id}, 202)

    async def _leave(self) -> None:
        try:
            await self.membership.leave()
        finally:
            if self._on_leave is not None:
                await self._on_leave()
