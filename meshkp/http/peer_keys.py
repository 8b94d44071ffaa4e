"""Resetting the key pinned for a node id (docs/cluster-security.md, "Node identity").

    POST /cluster/members/{node}/reset-key   {"key": "<64 hex digits>"} or {}          [admin]

A configured node id (`--node-id`) is pinned on every node to the first key seen with it. A
node that legitimately gets a new identity under the same id (after `meshkp restore`, or a lost
`DATA_DIR/node.key`) is then refused by its peers. This proposes ResetPeerKey through the
control plane: every node forgets the old key and pins the one given (the new node's
`identity.key` in its `GET /cluster/status`), or, without one, learns the next key seen with
the id. The audit trail names the admin who asked.
"""

from __future__ import annotations

from aiohttp import web

from meshkp.control.policy.commands import ResetPeerKey
from meshkp.errors import InvalidCommand, InvalidRequest
from meshkp.http.admins import applied_reply
from meshkp.http.auth import AdminAuth, require_admin
from meshkp.http.plane import ControlPlaneLike


class PeerKeyHandlers:
    def __init__(self, auth: AdminAuth, control: ControlPlaneLike) -> None:
        self.auth = auth
        self.control = control

    def register(self, app: web.Application) -> None:
        app.router.add_post("/cluster/members/{node}/reset-key", self.reset)

    async def reset(self, request: web.Request) -> web.Response:
        actor = require_admin(request, self.auth)
        body: object = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        key_hex = body.get("key", "") if isinstance(body, dict) else None
        if not isinstance(key_hex, str):
            raise InvalidRequest('send {"key": "<64 hex digits>"} (the node\'s identity.key in '
                                 'its GET /cluster/status), or {} to learn the next key seen')
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise InvalidRequest(f"key {key_hex[:80]!r} is not hex: give the 64 hex digits of "
                                 "the node's identity.key (GET /cluster/status)") from None
        command = ResetPeerKey(request.match_info["node"], key)
        try:
            command.validate()
        except InvalidCommand as exc:
            raise InvalidRequest(str(exc)) from None
        return applied_reply(await self.control.propose(command, actor))
