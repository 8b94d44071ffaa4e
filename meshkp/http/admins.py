"""Named admin identities (docs/cluster-security.md), changed through the control plane.

    GET    /cluster/admins          the admin names (never a token or its hash)
    PUT    /cluster/admins/{name}   {"token": "..."}: proposes PutAdmin             [admin]
    DELETE /cluster/admins/{name}   proposes RemoveAdmin                            [admin]

The client supplies the new admin's token; only its SHA-256 enters the log, so no node, log
entry or snapshot holds a usable credential. The reply comes once the change applied on the
node that answered: its next request accepts the new token.
"""

from __future__ import annotations

import json

from aiohttp import web

from meshkp.control.policy.apply import Applied
from meshkp.control.policy.commands import Command, PutAdmin, RemoveAdmin
from meshkp.errors import InvalidCommand, InvalidRequest
from meshkp.http.auth import MIN_TOKEN_CHARS, AdminAuth, require_admin, token_sha256
from meshkp.http.plane import ControlPlaneLike
from meshkp.keys.adminkey import admin_public_key


class AdminHandlers:
    def __init__(self, auth: AdminAuth, control: ControlPlaneLike) -> None:
        self.auth = auth
        self.control = control

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/admins", self.list)
        app.router.add_put("/cluster/admins/{name}", self.put)
        app.router.add_delete("/cluster/admins/{name}", self.remove)

    async def list(self, request: web.Request) -> web.Response:
        require_admin(request, self.auth)
        admins = self.control.state.admins
        return web.json_response({"admins": [
            {"name": name, "set_by": admin.actor, "token": str(admin.token),
             "key": admin.key.hex() or None}
            for name, admin in sorted(admins.items())]})

    async def put(self, request: web.Request) -> web.Response:
        actor = require_admin(request, self.auth)
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_CHARS:
            raise InvalidRequest(f'send {{"token": "..."}} with a token of at least {MIN_TOKEN_CHARS} '
                                 "characters (e.g. openssl rand -hex 32)")
        name = request.match_info["name"]
        token = token.strip()
        command = PutAdmin(name, token_sha256(token), admin_public_key(token))
        return applied_reply(await self._propose(command, actor))

    async def remove(self, request: web.Request) -> web.Response:
        actor = require_admin(request, self.auth)
        return applied_reply(await self._propose(RemoveAdmin(request.match_info["name"]), actor))

    async def _propose(self, command: Command, actor: str) -> Applied:
        try:
            command.validate()  # a 400 before anything is proposed
        except InvalidCommand as exc:
            raise InvalidRequest(str(exc)) from None
        return await self.control.propose(command, actor)


def applied_reply(applied: Applied) -> web.Response:
    """The answer to a change proposed through the log: 200 if it applied, 409 if refused."""
    audit = applied.audit
    body = {"accepted": applied.accepted, "token": str(applied.token),
            "detail": audit.detail if audit is not None else ""}
    return web.Response(text=json.dumps(body, sort_keys=True) + "\n",
                        status=200 if applied.accepted else 409, content_type="application/json")
