"""Membership endpoints on the node's HTTP port.

    GET  /cluster/nodes    {"nodes": [{"id", "addr", "http", "status", "incarnation", "meta"}]}
    GET  /cluster/status   this node's id, incarnation, counts by status, health, frame counters
    GET  /cluster/health   200 while a majority of known (not-left) members is alive and
                           the routing policy does not drain this node (or drained it less
                           than the drain grace period ago), else 503
Both GETs say when the node is bootstrapping (copying a peer's store, replication/snapshot.py):
"bootstrapping": {"peer", "phase", "total", "records", ...} in the body and the header
`X-Meshkp-Bootstrapping: <phase>`; it serves reads of what it holds meanwhile, so health stays 200.
    POST /cluster/join     {"peers": ["host:port" | "dns:NAME" | "srv:NAME", ...]}     [admin]
    POST /cluster/leave    broadcast "left", then stop the node (the process exits)     [admin]

Admin calls need `Authorization: Bearer <token>` (meshkp/http/auth.py). A node without a
mesh answers the three GETs as a mesh of one (itself, alive) and refuses join and leave.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from meshkp.errors import ConfigError, InvalidRequest
from meshkp.http.auth import AdminAuth, require_admin
from meshkp.http.routing import RoutingGate
from meshkp.membership.service import MembershipService
from meshkp.swim.types import Status

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
        membership: MembershipService | None,
        token: str | AdminAuth,
        on_leave: Callable[[], Awaitable[None]] | None = None,
        *,
        node_id: str | None = None,
        gate: RoutingGate | None = None,
        bootstrap: Callable[[], dict[str, object] | None] | None = None,
    ) -> None:
        if membership is None and node_id is None:
            raise ValueError("a node without a mesh names itself: pass node_id")
        self.membership = membership
        self.node_id = membership.node_id if membership is not None else str(node_id)
        self.token = token
        self.gate = gate
        self.bootstrap = bootstrap  # the running snapshot bootstrap's status, None when none
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

    def _alone_counts(self) -> dict[str, int]:
        return {s.label: int(s is Status.ALIVE) for s in Status}

    async def nodes(self, request: web.Request) -> web.Response:
        if self.membership is None:
            alone = {"id": self.node_id, "addr": "", "http": request.host, "status": "alive",
                     "incarnation": 0, "meta": {}}
            return _json({"self": self.node_id, "mesh": False, "nodes": [alone]})
        members = sorted(self.membership.members(), key=lambda m: m.node_id)
        return _json({"self": self.node_id, "nodes": [m.to_json() for m in members]})

    async def status(self, request: web.Request) -> web.Response:
        if self.membership is None:
            body = {"id": self.node_id, "mesh": False, "addr": None, "incarnation": None,
                    "counts": self._alone_counts(), "healthy": True}
        else:
            body = self.membership.status()
        return self._with_bootstrap(body, 200)

    def _with_bootstrap(self, body: dict[str, Any], status: int) -> web.Response:
        copying = self.bootstrap() if self.bootstrap is not None else None
        body["bootstrapping"] = copying
        response = _json(body, status)
        if copying is not None:
            response.headers["X-Meshkp-Bootstrapping"] = str(copying.get("phase", "yes"))
        return response

    async def health(self, request: web.Request) -> web.Response:
        if self.membership is None:
            healthy, counts = True, self._alone_counts()
        else:
            healthy, counts = self.membership.healthy(), self.membership.counts()
        body: dict[str, Any] = {"healthy": healthy, "counts": counts, "id": self.node_id}
        drain = self.gate.drain() if self.gate is not None else None
        if drain is not None:
            body.update(draining=True, drain_since=drain.since, drain_grace_s=drain.grace_s,
                        drain_remaining_s=round(drain.remaining_s, 3))
            if drain.over:
                body["healthy"] = False
        return self._with_bootstrap(body, 200 if body["healthy"] else 503)

    def _mesh(self) -> MembershipService:
        if self.membership is None:
            raise InvalidRequest(f"node {self.node_id} runs without a mesh: start it with --mesh "
                                 "to join or leave one")
        return self.membership

    async def join(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        membership = self._mesh()
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
            joined = await membership.join_specs(peers)
        except ConfigError as exc:
            raise InvalidRequest(str(exc)) from exc
        log.info("event=join_requested peers=%s answered=%d", ",".join(peers), joined)
        # 502: we are fine, but none of the peers we were pointed at answered.
        return _json({"joined": joined, "peers": peers}, 200 if joined else 502)

    async def leave(self, request: web.Request) -> web.Response:
        require_admin(request, self.token)
        self._mesh()
        if self._leave_task is None:
            self._leave_task = asyncio.get_running_loop().create_task(self._leave(),
                                                                      name="cluster-leave")
        return _json({"leaving": True, "id": self.node_id}, 202)

    async def _leave(self) -> None:
        try:
            await self._mesh().leave()
        finally:
            if self._on_leave is not None:
                await self._on_leave()
