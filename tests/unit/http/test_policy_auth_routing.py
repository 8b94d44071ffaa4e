"""Named admins (any node accepts a token whose hash the applied policy holds) and the routing
gate (read-only names a writable node), on PolicyStates applied from real entries."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from meshkp.control.policy.apply import apply_entry
from meshkp.control.policy.commands import Command, Proposal, PutAdmin, RemoveAdmin, SetRouting
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.types import Entry, EntryKind
from meshkp.http.auth import ACTOR_KEY, BOOTSTRAP_ACTOR, AdminAuth, require_admin, token_sha256
from meshkp.http.routing import RoutingGate

BOOTSTRAP = "b" * 32


def applied(*commands: Command) -> PolicyState:
    state = PolicyState()
    for index, command in enumerate(commands, start=1):
        entry = Entry(index, 1, EntryKind.COMMAND, Proposal(command, "admin", "n1", index).encode())
        state = apply_entry(state, entry).state
    return state


def request(token: str) -> web.Request:
    return make_mocked_request("POST", "/cluster/sync", headers={"Authorization": f"Bearer {token}"})


def test_a_named_admin_is_accepted_by_its_name_and_refused_once_removed() -> None:
    ops, audit = "o" * 40, "a" * 40
    state = applied(PutAdmin("ops", token_sha256(ops)), PutAdmin("audit", token_sha256(audit)))
    auth = AdminAuth(BOOTSTRAP, lambda: state)
    req = request(ops)
    assert require_admin(req, auth) == "ops" and req[ACTOR_KEY] == "ops"
    assert require_admin(request(audit), auth) == "audit"
    assert require_admin(request(BOOTSTRAP), auth) == BOOTSTRAP_ACTOR
    state = applied(PutAdmin("ops", token_sha256(ops)), PutAdmin("audit", token_sha256(audit)),
                    RemoveAdmin("ops"))
    with pytest.raises(web.HTTPUnauthorized):
        require_admin(request(ops), auth)
    with pytest.raises(web.HTTPUnauthorized):
        require_admin(request("x" * 40), auth)


def test_read_only_names_a_writable_node_and_drain_is_not_writable() -> None:
    state = applied(SetRouting("n1", read_only=True), SetRouting("n2", drain=True))
    peers = {"n2": "127.0.0.2:11371", "n3": "127.0.0.3:11371"}
    gate = RoutingGate("n1", lambda: state, lambda: peers)
    assert gate.writable_node() == "n3 http://127.0.0.3:11371"
    with pytest.raises(web.HTTPServiceUnavailable) as refused:
        gate.check_writable()
    assert "upload to n3 http://127.0.0.3:11371" in refused.value.text
    assert RoutingGate("n3", lambda: state).check_writable() is None
    alone = RoutingGate("n1", lambda: state)
    with pytest.raises(web.HTTPServiceUnavailable) as none_known:
        alone.check_writable()
    assert "no writable node is known" in none_known.value.text


def test_drain_since_is_kept_while_draining_and_reset_after() -> None:
    now = [100.0]
    draining = applied(SetRouting("n1", drain=True))
    current = [draining]
    gate = RoutingGate("n1", lambda: current[0], clock=lambda: now[0])
    assert gate.draining() == (True, 100.0)
    now[0] = 130.0
    assert gate.draining() == (True, 100.0)
    current[0] = applied(SetRouting("n1", drain=True), SetRouting("n1"))
    assert gate.draining() == (False, None)


def test_a_drain_is_over_once_its_grace_period_has_passed() -> None:
    now = [100.0]
    current = [applied(SetRouting("n1", drain=True))]
    gate = RoutingGate("n1", lambda: current[0], clock=lambda: now[0], drain_grace_s=10.0)
    drain = gate.drain()
    assert drain is not None and not drain.over and drain.remaining_s == 10.0
    now[0] = 109.9
    drain = gate.drain()
    assert drain is not None and not drain.over and round(drain.remaining_s, 3) == 0.1
    now[0] = 110.0
    drain = gate.drain()
    assert drain is not None and drain.over and drain.remaining_s == 0.0
    current[0] = applied(SetRouting("n1", drain=True), SetRouting("n1"))
    assert gate.drain() is None
    # A new drain starts a new grace period.
    current[0] = applied(SetRouting("n1", drain=True))
    now[0] = 200.0
    drain = gate.drain()
    assert drain is not None and drain.since == 200.0 and not drain.over
