"""Control-plane endpoints: the cluster policy, its leader, its log and its members.

    GET    /cluster/leader               {"leader", "authoritative", "term", "node", "leader_http"}
    GET    /cluster/consensus            term, commit/applied index, lease, voters, learners...
    GET    /cluster/audit?after=&limit=  audit entries with seq > after, oldest first
    GET    /cluster/members/{id}         its role in the control plane (voter, learner, removed)
    DELETE /cluster/members/{id}         remove it for good, through the log              [admin]
    GET    /cluster/policy[?blacklist=1] policy version, token, limits (and the blacklist)
    PUT    /cluster/policy               {"limits": {NAME: VALUE}, "expect_version"?}    [admin]
                                         or {"blacklist": {"add": {FPR: REASON}}} or
                                         {"blacklist": {"remove": [FPR]}} (hex fingerprints)
    GET    /cluster/routing              routing of every node that has one
    PUT    /cluster/routing              {"node", "weight"?, "drain"?, "read_only"?, "zone"?} [admin]
    GET    /cluster/conflicts/policies   conflict rules per kind
    PUT    /cluster/conflicts/policies   {"kind"?, "default", "by_reason"?}              [admin]

Mutations go through ControlPlane.propose: forwarded to the leader from a follower, answered
once applied on this node. No leader, a minority or a timeout: 503 with the last known leader
(and its HTTP address when membership knows it) and Retry-After, within the propose timeout.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from meshkp.control import (
    Applied,
    AuditEntry,
    BlacklistAdd,
    BlacklistRemove,
    ChangeMembership,
    ChangeOp,
    Command,
    ConflictKind,
    PolicyState,
    Rule,
    SetConflictRules,
    SetLimits,
    SetRouting,
)
from meshkp.control.driver.plane import ControlPlane
from meshkp.errors import ControlUnavailable, InvalidCommand, InvalidRequest

# Bodies of control mutations are small maps; a blacklist batch is the largest (~300 KB).
MAX_BODY = 1024 * 1024
MAX_AUDIT_PAGE = 500

Actor = Callable[[web.Request], str]  # checks the admin credential; the name for the audit
HttpOf = Callable[[str], str | None]  # a node's HKP address, when membership knows it


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, sort_keys=True) + "\n", status=status,
                        content_type="application/json", headers=headers)


def _audit(entry: AuditEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"seq": entry.seq, "token": str(entry.token), "op": entry.op, "actor": entry.actor,
            "node": entry.node, "hlc": entry.hlc, "outcome": entry.outcome, "detail": entry.detail}


def _policy(state: PolicyState) -> dict[str, Any]:
    return {"version": state.version, "token": str(state.token),
            "policy_token": str(state.policy_token), "limits": dataclasses.asdict(state.limits),
            "blacklist_size": len(state.blacklist)}


class ControlHandlers:
    """The control-plane routes of one node."""

    def __init__(self, plane: ControlPlane, *, actor: Actor, http_of: HttpOf | None = None) -> None:
        self.plane = plane
        self._actor = actor  # 401 unless the request carries an admin's token; its name
        self._http_of = http_of or (lambda _node: None)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/cluster/leader", self.leader)
        app.router.add_get("/cluster/consensus", self.consensus)
        app.router.add_get("/cluster/audit", self.audit)
        app.router.add_get("/cluster/members/{id}", self.member)
        app.router.add_delete("/cluster/members/{id}", self.remove_member)
        app.router.add_get("/cluster/policy", self.get_policy)
        app.router.add_put("/cluster/policy", self.put_policy)
        app.router.add_get("/cluster/routing", self.get_routing)
        app.router.add_put("/cluster/routing", self.put_routing)
        app.router.add_get("/cluster/conflicts/policies", self.get_conflict_rules)
        app.router.add_put("/cluster/conflicts/policies", self.put_conflict_rules)

    # -- reads -------------------------------------------------------------------------------

    async def leader(self, request: web.Request) -> web.Response:
        leader, authoritative = self.plane.leader()
        return _json({"leader": leader, "authoritative": authoritative, "term": self.plane.core.term,
                      "node": self.plane.node_id,
                      "leader_http": self._http_of(leader) if leader else None})

    async def consensus(self, request: web.Request) -> web.Response:
        return _json(self.plane.status())

    async def audit(self, request: web.Request) -> web.Response:
        after = _int_param(request, "after", 0, 0, 2**63 - 1)
        limit = _int_param(request, "limit", 100, 1, MAX_AUDIT_PAGE)
        state = self.plane.state
        entries = state.audit_page(after, limit)
        return _json({"entries": [_audit(e) for e in entries], "total": state.audit_total,
                      "next_after": entries[-1].seq if entries else after})

    async def member(self, request: web.Request) -> web.Response:
        node = request.match_info["id"]
        status = self.plane.status()
        cfg = self.plane.core.configuration
        role = ("voter" if node in cfg.voters else "learner" if node in cfg.learners
                else "removed" if node in cfg.removed else None)
        if role is None:
            return _json({"error": f"{node} is not a member of the control plane"}, 404)
        rows: list[dict[str, object]] = [*status["voters"], *status["learners"]]  # type: ignore[misc]
        found = [m for m in rows if m["id"] == node]
        return _json({"id": node, "role": role, **(found[0] if found else {})})

    async def get_policy(self, request: web.Request) -> web.Response:
        state = self.plane.state
        body = _policy(state)
        if request.query.get("blacklist") in ("1", "true", "yes"):
            body["blacklist"] = [{"fingerprint": fp.hex().upper(), "reason": e.reason, "actor": e.actor,
                                  "token": str(e.token)} for fp, e in sorted(state.blacklist.items())]
        return _json(body)

    async def get_routing(self, request: web.Request) -> web.Response:
        state = self.plane.state
        return _json({"version": state.version, "nodes": {
            node: dataclasses.asdict(r) for node, r in sorted(state.routing.items())}})

    async def get_conflict_rules(self, request: web.Request) -> web.Response:
        state = self.plane.state
        return _json({"version": state.version, "rules": {
            kind.value: {"default": rules.default.value,
                         "by_reason": {r: rule.value for r, rule in sorted(rules.by_reason.items())}}
            for kind, rules in sorted(state.conflict_rules.items(), key=lambda kv: kv[0].value)}})

    # -- mutations ---------------------------------------------------------------------------

    async def remove_member(self, request: web.Request) -> web.Response:
        actor = self._actor(request)
        node = request.match_info["id"]
        return await self._propose(ChangeMembership(ChangeOp.REMOVE, node), actor, None)

    async def put_policy(self, request: web.Request) -> web.Response:
        actor = self._actor(request)
        body = await _body(request)
        limits, blacklist = body.get("limits"), body.get("blacklist")
        command: Command
        if isinstance(limits, dict) and blacklist is None:
            command = SetLimits(limits)
        elif isinstance(blacklist, dict) and limits is None:
            command = _blacklist_command(blacklist)
        else:
            return _error(400, 'the body must be {"limits": {"NAME": VALUE, ...}}, or {"blacklist": '
                               '{"add": {"FINGERPRINT": "REASON", ...}}} or {"blacklist": {"remove": '
                               '["FINGERPRINT", ...]}}: one change per request')
        return await self._propose(command, actor, _expect(body))

    async def put_routing(self, request: web.Request) -> web.Response:
        actor = self._actor(request)
        body = await _body(request)
        node = body.get("node", self.plane.node_id)
        if not isinstance(node, str):
            return _error(400, '"node" must be a node id')
        current = self.plane.state.routing_of(node)
        command = SetRouting(node, body.get("weight", current.weight), body.get("drain", current.drain),
                             body.get("read_only", current.read_only), body.get("zone", current.zone))
        return await self._propose(command, actor, _expect(body))

    async def put_conflict_rules(self, request: web.Request) -> web.Response:
        actor = self._actor(request)
        body = await _body(request)
        try:
            kind = ConflictKind(body.get("kind", ConflictKind.DELETE_UPDATE.value))
            default = Rule(body.get("default"))
            reasons = body.get("by_reason", {})
            if not isinstance(reasons, dict):
                raise ValueError("by_reason must be a map of reason -> rule")
            by_reason = {str(r): Rule(v) for r, v in reasons.items()}
        except ValueError as exc:
            return _error(400, f"{exc}; rules are {', '.join(r.value for r in Rule)}")
        return await self._propose(SetConflictRules(kind, default, by_reason), actor, _expect(body))

    async def _propose(self, command: Command, actor: str, expect: int | None) -> web.Response:
        try:
            applied = await self.plane.propose(command, actor, expect_version=expect)
        except InvalidCommand as exc:
            return _error(400, str(exc))
        except ControlUnavailable as exc:
            return self.unavailable(exc)
        return _json(self._applied(applied), 200 if applied.accepted or applied.proposal is None else 409)

    def unavailable(self, exc: ControlUnavailable) -> web.Response:
        """503 with the last known leader and Retry-After."""
        return _json({"status": 503, "error": str(exc), "leader": exc.leader or None,
                      "leader_http": self._http_of(exc.leader) if exc.leader else None},
                     503, headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})

    @staticmethod
    def _applied(applied: Applied) -> dict[str, Any]:
        return {"applied": applied.accepted, "token": str(applied.token),
                "audit": _audit(applied.audit), "policy": _policy(applied.state)}


def _blacklist_command(change: dict[str, Any]) -> BlacklistAdd | BlacklistRemove:
    """The command of a {"add": {FPR: REASON}} or {"remove": [FPR]} body; InvalidRequest else."""
    add, remove = change.get("add"), change.get("remove")
    if isinstance(add, dict) and remove is None:
        return BlacklistAdd(tuple((_hex_fingerprint(fp), reason) for fp, reason in add.items()))
    if isinstance(remove, list) and add is None:
        return BlacklistRemove(tuple(_hex_fingerprint(fp) for fp in remove))
    raise InvalidRequest('"blacklist" must be {"add": {"FINGERPRINT": "REASON", ...}} or '
                         '{"remove": ["FINGERPRINT", ...]}')


def _hex_fingerprint(value: object) -> bytes:
    text = value.strip().removeprefix("0x").removeprefix("0X") if isinstance(value, str) else ""
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidRequest(f"{value!r} is not a hex fingerprint") from None


def _error(status: int, message: str) -> web.Response:
    return _json({"status": status, "error": message}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise InvalidRequest(f"the body is larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def _expect(body: dict[str, Any]) -> int | None:
    expect = body.get("expect_version")
    if expect is not None and (not isinstance(expect, int) or isinstance(expect, bool)):
        raise InvalidRequest("expect_version must be an integer (a policy version)")
    return expect


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be in {low}..{high}")
    return value

