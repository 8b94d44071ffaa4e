"""The applied cluster policy's effects on real nodes (in-process Node, real LevelDB, real
replication over loopback), driven by real entries applied with `apply_entry` (policy_log.py):
limits, blacklist (hidden, refused, equal roots at any policy versions), conflicts resolved
by each rule and by hand, drain and read-only routing, named admins and the delete audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from meshkp.control.policy.commands import (
    BlacklistAdd,
    BlacklistRemove,
    ConflictKind,
    Rule,
    SetConflictRules,
    SetLimits,
    SetRouting,
)
from meshkp.http.auth import token_sha256
from meshkp.keys.adminkey import admin_public_key
from meshkp.keys.commit import PULLED, joining
from meshkp.keys.record import KeyRecord
from meshkp.net.crypto import generate_key, write_key_file
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node
from meshkp.openpgp.armor import armor
from meshkp.openpgp.digest import certificate_digest
from meshkp.replication.config import ReplicationConfig
from tests.ports import free_port
from tests.unit.keys.helpers import certificate
from tests.unit.node.policy_log import LogPlane, PolicyLog

CERTS = [certificate(i, seed=b"policy-node") for i in range(3)]
DIGEST0 = bytes.fromhex(certificate_digest(CERTS[0]))


def _config(root: Path, name: str, port: int, peers: tuple[str, ...]) -> NodeConfig:
    return NodeConfig(data_dir=root / name, http_port=0, access_log=False, node_id=name,
                      cluster_key_file=root / "cluster.key",
                      replication=ReplicationConfig(port=port, static_peers=peers,
                                                    sync_interval_s=3600, first_sync_delay_s=3600))


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes replicating with each other (anti-entropy only when a test asks)."""
    write_key_file(tmp_path / "cluster.key", [generate_key()], overwrite=False)
    ports = [free_port(), free_port()]
    nodes = [Node(_config(tmp_path, f"n{i}", ports[i], (f"127.0.0.1:{ports[1 - i]}",)))
             for i in range(2)]
    for node in nodes:
        await node.start()
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            await node.stop()


def _attach(log: PolicyLog, node: Node, leader: bool = False) -> LogPlane:
    plane = log.plane(node.node_id, leader)
    assert node.policy is not None
    node.policy.attach(plane)
    return plane


async def _sync(*nodes: Node) -> None:
    for node in nodes:
        assert node.replicator is not None
        await node.replicator.sync_now()


async def _root(node: Node) -> str:
    assert node.replicator is not None
    return str((await node.replicator.status())["merkle_root"])


async def _upload(session: aiohttp.ClientSession, node: Node, index: int) -> aiohttp.ClientResponse:
    keytext = armor(CERTS[index].to_bytes())
    async with session.post(node.url + "/pks/add", data={"keytext": keytext}) as reply:
        await reply.read()
        return reply


async def _get_status(session: aiohttp.ClientSession, node: Node, index: int) -> int:
    fp = CERTS[index].fingerprint.hex()
    async with session.get(node.url + f"/pks/lookup?op=get&search=0x{fp}") as reply:
        return reply.status


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_limits_of_the_policy_apply_to_the_next_commit_and_show_in_stats(pair) -> None:
    a, _ = pair
    log = PolicyLog()
    plane = _attach(log, a, leader=True)
    await plane.propose(SetLimits({"search_chars": 7, "upload_keys": 3}), "ops")
    assert a.committer is not None and a.keys is not None
    assert a.committer.limits.search_chars == 7 and a.keys.parser.limits.upload_keys == 3
    async with aiohttp.ClientSession() as session:
        async with session.get(a.url + "/pks/lookup?op=stats&options=mr") as reply:
            stats = await reply.json()
        assert stats["limits"]["search_chars"] == 7
        async with session.get(a.url + "/pks/lookup?op=index&search=longer-than-seven") as reply:
            assert reply.status == 400 and "limit of 7" in await reply.text()


async def test_a_blacklisted_key_is_hidden_and_refused_on_every_node_with_equal_roots(pair) -> None:
    a, b = pair
    log = PolicyLog()
    planes = [_attach(log, a, leader=True), _attach(log, b)]
    fp = CERTS[0].fingerprint
    async with aiohttp.ClientSession() as session:
        assert (await _upload(session, a, 0)).status == 200
        await _sync(a, b)
        assert await _get_status(session, b, 0) == 200
        assert b.keys is not None and len(await b.keys.hashquery([DIGEST0])) == 1
        await planes[0].propose(BlacklistAdd(((fp, "court order 7"),)), "ops")
        for node in (a, b):
            assert await _get_status(session, node, 0) == 404
            async with session.get(node.url + f"/pks/lookup?op=index&search=0x{fp.hex()}") as reply:
                assert reply.status == 404
            assert node.keys is not None
            assert await node.keys.hashquery([DIGEST0]) == []
            async with session.get(node.url + f"/pks/lookup?op=hget&search={DIGEST0.hex()}") as reply:
                assert reply.status == 404
            reply = await _upload(session, node, 0)
            assert reply.status == 403
            async with session.post(node.url + "/pks/add",
                                    data={"keytext": armor(CERTS[0].to_bytes())}) as again:
                assert f"{fp.hex().upper()} is blacklisted by the cluster policy: court order 7" \
                    in await again.text()
        await _sync(a, b)
        assert await _root(a) == await _root(b)
        await planes[0].propose(BlacklistRemove((fp,)), "ops")
        assert await _get_status(session, b, 0) == 200  # the record stayed: served again


async def test_nodes_at_different_policy_versions_do_not_poison_each_other(pair) -> None:
    a, b = pair
    log = PolicyLog()
    ahead = _attach(log, a, leader=True)
    behind = _attach(log, b)
    behind.paused = True  # b has not applied the blacklist yet
    fp = CERTS[1].fingerprint
    await ahead.propose(BlacklistAdd(((fp, "spam"),)), "ops")
    async with aiohttp.ClientSession() as session:
        # The node behind takes an upload of the key; the node ahead stores it hidden.
        assert (await _upload(session, b, 1)).status == 200
        assert (await _upload(session, a, 1)).status == 403
        await _sync(a, b)
        await _until(lambda: _same_root(a, b), "equal roots")
        assert await _get_status(session, b, 1) == 200
        assert await _get_status(session, a, 1) == 404
        assert await a.store.get(fp) is not None  # type: ignore[union-attr]
        # Catching up hides it there too; nothing was lost or rewritten meanwhile.
        behind.paused = False
        behind.catch_up()
        assert await _get_status(session, b, 1) == 404
        assert await _root(a) == await _root(b)


async def _same_root(a: Node, b: Node) -> bool:
    return await _root(a) == await _root(b)


async def _make_conflict(a: Node, b: Node, index: int, reason: str = "takedown") -> KeyRecord:
    """A delete on `a` concurrent with an update on `b` of a key both held, then synced."""
    cert = CERTS[index]
    base = KeyRecord.new(cert, "n9")
    for node in (a, b):
        assert node.committer is not None
        await node.committer.run(node.store, joining([base]), PULLED)
    assert a.replicator is not None and b.committer is not None
    updated = base.add(cert, b.node_id)
    await b.committer.run(b.store, joining([updated]), PULLED)  # not pushed: concurrent
    deleted = base.delete(a.node_id, 1000, reason, "alice", a.identity)  # signed, as a.delete does
    await a.committer.run(a.store, joining([deleted]), PULLED)
    await _sync(a, b)
    merged = deleted.join(updated, a.committer.limits)  # type: ignore[union-attr]
    assert merged.conflict is not None
    return merged


async def _conflicts(session: aiohttp.ClientSession, node: Node) -> dict:
    async with session.get(node.url + "/cluster/conflicts") as reply:
        return await reply.json()


async def _resolved_everywhere(a: Node, b: Node, conflict_id: str) -> None:
    for node in (a, b):
        await _until(lambda n=node: _no_conflict(n, conflict_id), f"{conflict_id} resolved")


async def _no_conflict(node: Node, conflict_id: str) -> bool:
    assert node.replicator is not None
    return all(r.conflict is None or r.conflict.id != conflict_id
               for r in await node.replicator.conflicts())


@pytest.mark.parametrize("rule", [Rule.DELETE_WINS, Rule.UPDATE_WINS])
async def test_a_rule_resolves_a_conflict_once_on_every_node(pair, rule: Rule) -> None:
    a, b = pair
    log = PolicyLog()
    leader = _attach(log, a, leader=True)
    _attach(log, b)
    assert a.policy is not None
    await leader.propose(SetConflictRules(ConflictKind.DELETE_UPDATE, Rule.MANUAL, {}), "ops")
    merged = await _make_conflict(a, b, 0)
    conflict_id = merged.conflict.id  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        for node in (a, b):  # the same id on every node, with the rule that applies
            listed = await _conflicts(session, node)
            assert [(c["id"], c["policy"]) for c in listed["conflicts"]] == [(conflict_id, "manual")]
        # The rule change kicks the leader's resolver, which proposes through the log.
        await leader.propose(SetConflictRules(ConflictKind.DELETE_UPDATE, rule, {}), "ops")
        await _resolved_everywhere(a, b, conflict_id)
        assert await a.policy.resolve_by_rules() == 0  # idempotent: resolved already
        assert b.policy is not None and not b.policy.is_leader
        expected = 200 if rule is Rule.UPDATE_WINS else 404
        for node in (a, b):
            await _until(lambda n=node: _status_is(session, n, 0, expected), "the decision served")
        audits = [e for e in leader.state.audit if e.op == "resolve-conflict"]
        assert len(audits) == 1 and audits[0].actor == f"policy {rule.value}"
        # A later sync does not reopen it, and both nodes hold the same state.
        await _sync(a, b)
        assert await _root(a) == await _root(b)
        assert (await _conflicts(session, a))["conflicts"] == []
    # The leader signed the resolution; every node wrote that same signed record.
    for node in (a, b):
        stored = await node.keys.record(CERTS[0].fingerprint)  # type: ignore[union-attr]
        assert stored is not None and stored.tombstone is not None
        signed = stored.tombstone.lift_proofs if rule is Rule.UPDATE_WINS else [
            p for p in stored.tombstone.proofs if p.actor == f"policy {rule.value}"]
        assert [p.node for p in signed] == [a.node_id]


async def _status_is(session: aiohttp.ClientSession, node: Node, index: int, status: int) -> bool:
    return await _get_status(session, node, index) == status


async def test_a_manual_conflict_stays_queued_until_resolved_by_hand(pair) -> None:
    a, b = pair
    log = PolicyLog()
    leader = _attach(log, a, leader=True)
    _attach(log, b)
    await leader.propose(SetConflictRules(ConflictKind.DELETE_UPDATE, Rule.MANUAL, {}), "ops")
    merged = await _make_conflict(a, b, 2)
    conflict_id = merged.conflict.id  # type: ignore[union-attr]
    assert a.policy is not None and await a.policy.resolve_by_rules() == 0
    async with aiohttp.ClientSession() as session:
        url = b.url + f"/cluster/conflicts/{conflict_id}/resolve"  # sent to any node
        async with session.post(url, json={"keep": "update"},
                                headers={"Authorization": f"Bearer {b.admin_token}"}) as reply:
            body = await reply.json()
            assert reply.status == 200 and body["accepted"] is True, body
        await _resolved_everywhere(a, b, conflict_id)
        for node in (a, b):
            await _until(lambda n=node: _status_is(session, n, 2, 200), "the kept update served")
        async with session.post(url, json={"keep": "delete"},
                                headers={"Authorization": f"Bearer {b.admin_token}"}) as reply:
            assert reply.status == 409  # decided once
        await _sync(a, b)
        assert await _root(a) == await _root(b)
        # The counters a repair recounts from the records agree with those the commits kept
        # (a lifted tombstone counts as a live key, not as a tombstone).
        assert a.replicator is not None
        before = await a.replicator.status()
        await a.replicator.repair()
        after = await a.replicator.status()
        assert (before["keys"], before["tombstones"]) == (after["keys"], after["tombstones"])
        assert after["tombstones"] == 0 and after["keys"] == 1


async def test_drain_makes_health_503_and_read_only_refuses_uploads(tmp_path: Path) -> None:
    # No grace period: health answers 503 as soon as the drain applies.
    node = Node(NodeConfig(data_dir=tmp_path / "solo", http_port=0, access_log=False,
                           drain_grace_s=0))
    await node.start()
    try:
        log = PolicyLog()
        plane = _attach(log, node, leader=True)
        async with aiohttp.ClientSession() as session:
            for path in ("/cluster/health", "/cluster/status", "/cluster/nodes"):
                async with session.get(node.url + path) as reply:  # a mesh of one
                    assert reply.status == 200, path
            await plane.propose(SetRouting(node.node_id, drain=True), "ops")
            async with session.get(node.url + "/cluster/health") as reply:
                body = await reply.json()
                assert reply.status == 503 and body["draining"] is True
            assert await _get_status(session, node, 0) == 404  # still serving lookups
            await plane.propose(SetRouting(node.node_id, read_only=True), "ops")
            async with session.get(node.url + "/cluster/health") as reply:
                assert reply.status == 200
            async with session.post(node.url + "/pks/add",
                                    data={"keytext": armor(CERTS[0].to_bytes())}) as reply:
                assert reply.status == 503 and "read-only" in await reply.text()
                assert reply.headers["Retry-After"]
    finally:
        await node.stop()


async def test_a_named_admin_is_accepted_and_named_in_tombstones_and_the_audit(tmp_path: Path) -> None:
    node = Node(NodeConfig(data_dir=tmp_path / "solo", http_port=0, access_log=False))
    await node.start()
    try:
        log = PolicyLog()
        plane = _attach(log, node, leader=True)
        ops_token = "o" * 40
        bootstrap = {"Authorization": f"Bearer {node.admin_token}"}
        fp = CERTS[0].fingerprint.hex()
        async with aiohttp.ClientSession() as session:
            async with session.delete(node.url + f"/cluster/keys/{fp}?reason=x",
                                      headers={"Authorization": f"Bearer {ops_token}"}) as reply:
                assert reply.status == 401
            async with session.put(node.url + "/cluster/admins/ops", json={"token": ops_token},
                                   headers=bootstrap) as reply:
                assert reply.status == 200, await reply.text()
            assert plane.state.admins["ops"].token_sha256 == token_sha256(ops_token)
            async with session.delete(node.url + f"/cluster/keys/{fp}?reason=abuse&actor=someone",
                                      headers={"Authorization": f"Bearer {ops_token}"}) as reply:
                assert reply.status == 200
        record = await node.keys.record(CERTS[0].fingerprint)  # type: ignore[union-attr]
        assert record is not None and record.tombstone is not None
        assert record.tombstone.actor == "ops"
        assert node.policy is not None
        await _until(lambda: _audited(plane, "ops"), "the delete in the audit trail")
        assert await node.policy.drain_outbox() == 0  # none left, none twice
    finally:
        await node.stop()


async def test_a_delete_is_signed_by_its_admin_and_a_bootstrap_token_alone_cannot_delete(
        pair) -> None:
    """The admin of a delete is proven, not vouched for: the tombstone carries the signature of
    the key derived from the admin's token, which the admin table names, and a peer accepts it
    by that key. A token that is no named admin's (a node's own bootstrap token) gets 403 once
    admins have keys: peers would refuse its delete, which would stand on that node only."""
    a, b = pair
    log = PolicyLog()
    _attach(log, a, leader=True)
    plane_b = _attach(log, b)
    ops_token = "p" * 40
    fp0, fp1 = CERTS[0].fingerprint, CERTS[1].fingerprint
    async with aiohttp.ClientSession() as session:
        for index in (0, 1):
            assert (await _upload(session, a, index)).status == 200
        async with session.put(a.url + "/cluster/admins/ops", json={"token": ops_token},
                               headers={"Authorization": f"Bearer {a.admin_token}"}) as reply:
            assert reply.status == 200, await reply.text()
        assert plane_b.state.admin_keys == {admin_public_key(ops_token): "ops"}
        async with session.get(b.url + "/cluster/admins",
                               headers={"Authorization": f"Bearer {ops_token}"}) as reply:
            assert (await reply.json())["admins"][0]["key"] == admin_public_key(ops_token).hex()
        async with session.delete(a.url + f"/cluster/keys/{fp0.hex()}?reason=abuse",
                                  headers={"Authorization": f"Bearer {ops_token}"}) as reply:
            assert reply.status == 200, await reply.text()
        async with session.delete(b.url + f"/cluster/keys/{fp1.hex()}?reason=abuse",
                                  headers={"Authorization": f"Bearer {b.admin_token}"}) as reply:
            assert reply.status == 403
            assert "no named admin's" in await reply.text()
        await _sync(a, b)
        assert await _get_status(session, b, 0) == 404  # the signed delete reached b
        assert await _get_status(session, b, 1) == 200  # the refused one changed nothing
    record = await b.keys.record(fp0)  # type: ignore[union-attr]
    assert record is not None and record.tombstone is not None
    (proof,) = record.tombstone.proofs
    assert proof.node == a.node_id and proof.actor == "ops"
    assert proof.admin_key == admin_public_key(ops_token) and proof.holds(fp0)


async def _count_audits(plane: LogPlane, count: int) -> bool:
    return len(plane.state.audit) == count


async def _audited(plane: LogPlane, actor: str) -> bool:
    return any(e.op == "audit-delete" and e.actor == actor for e in plane.state.audit)


async def test_admin_deletes_wait_in_the_outbox_while_the_log_is_unreachable(tmp_path: Path) -> None:
    # A node with a static replication peer and no mesh runs no control plane of its own
    # (meshkp/node/control_parts.py runs_control): the log is out of reach until one attaches.
    write_key_file(tmp_path / "cluster.key", [generate_key()], overwrite=False)
    node = Node(_config(tmp_path, "solo", free_port(), (f"127.0.0.1:{free_port()}",)))
    await node.start()
    try:
        assert node.replicator is not None and node.policy is not None and node.control is None
        for index in range(2):  # no control plane yet: deletes still work (AP)
            await node.replicator.delete(CERTS[index].fingerprint, "abuse", "ops", audit=True)
        log = PolicyLog()
        plane = log.plane(node.node_id, leader=True)
        plane.paused = True
        node.policy.attach(plane)
        plane.paused = False
        await _until(lambda: _count_audits(plane, 2), "both deletes in the audit trail")
        assert await node.policy.drain_outbox() == 0  # none left, none proposed twice
        assert [(e.op, e.actor) for e in plane.state.audit] == [("audit-delete", "ops")] * 2
    finally:
        await node.stop()


async def test_a_rule_per_tombstone_reason_overrides_the_default(pair) -> None:
    a, b = pair
    log = PolicyLog()
    leader = _attach(log, a, leader=True)
    _attach(log, b)
    await leader.propose(SetConflictRules(ConflictKind.DELETE_UPDATE, Rule.MANUAL,
                                          {"spam": Rule.UPDATE_WINS}), "ops")
    spam = (await _make_conflict(a, b, 0, reason="spam")).conflict
    kept = (await _make_conflict(a, b, 1, reason="court order")).conflict
    assert spam is not None and kept is not None
    async with aiohttp.ClientSession() as session:
        listed = {c["id"]: c["policy"] for c in (await _conflicts(session, b))["conflicts"]}
        assert listed == {spam.id: "update-wins", kept.id: "manual"} or listed == {kept.id: "manual"}
        await _resolved_everywhere(a, b, spam.id)
        remaining = [c["id"] for c in (await _conflicts(session, a))["conflicts"]]
        assert remaining == [kept.id]
        await _until(lambda: _status_is(session, b, 0, 200), "the spam-flagged update served")
