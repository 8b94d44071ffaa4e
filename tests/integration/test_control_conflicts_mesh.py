"""Delete/update conflicts on five real `meshkp serve --mesh` processes, decided through the log.

Rules by tombstone reason: "spam" deletes win (the default), "keep-it" updates win, "ask" is
manual. n4 stops; three keys are deleted (one per reason); n4 comes back isolated (no seeds)
and takes an update of each; then it rejoins and anti-entropy brings the three conflicts to
every node. The leader resolves the first two by their rules, the third stays listed until an
operator resolves it by hand (keep update). Every node ends with the same decisions, no
conflict left, equal Merkle roots, and exactly one audit entry per resolution.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.integration.control_mesh import ControlMesh, wait_until
from tests.integration.replication_mesh import armored, fingerprint, with_user_id

pytestmark = pytest.mark.integration

KEYS = {"spam": 960, "keep-it": 961, "ask": 962}


def _auth(cmesh: ControlMesh, node: str) -> dict[str, str]:
    token = (cmesh.servers[node].data_dir / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def _conflicts(cmesh: ControlMesh, node: str) -> list[dict]:
    return cmesh.get(node, "/cluster/conflicts").get("conflicts", [])


def _resolutions(cmesh: ControlMesh, node: str) -> list[dict]:
    entries = cmesh.get(node, "/cluster/audit?after=0&limit=500").get("entries", [])
    return [e for e in entries if e["op"] == "resolve-conflict"]


def _found(cmesh: ControlMesh, node: str, index: int) -> int:
    return cmesh.servers[node].lookup(op="get", search="0x" + fingerprint(index)).status


def _roots(cmesh: ControlMesh) -> set[str]:
    return {json.loads(s.request("GET", "/cluster/sync/status").body)["merkle_root"]
            for s in cmesh.running().values()}


def test_conflicts_resolved_by_each_rule_and_by_hand_with_one_audit_entry_each(cmesh: ControlMesh) -> None:
    for i in range(cmesh.size):
        cmesh.start(i)
    voters = lambda: cmesh.get("n0", "/cluster/consensus").get("voters", [])  # noqa: E731
    wait_until(lambda: len(voters()) == 5, 60, "5 voters", voters)
    nodes = sorted(cmesh.servers)
    rules = cmesh.servers["n1"].request(
        "PUT", "/cluster/conflicts/policies", headers=_auth(cmesh, "n1"),
        body=json.dumps({"default": "delete-wins",
                         "by_reason": {"keep-it": "update-wins", "ask": "manual"}}).encode())
    assert rules.status == 200, rules.body
    for index in KEYS.values():
        assert cmesh.servers["n0"].add(armored(index, with_subkey=False)).status == 200
    wait_until(lambda: all(_found(cmesh, n, i) == 200 for n in nodes for i in KEYS.values()), 20,
               "the keys everywhere")

    assert cmesh.servers["n4"].stop() == 0
    for reason, index in KEYS.items():
        deleted = cmesh.servers["n0"].request(
            "DELETE", f"/cluster/keys/{fingerprint(index)}?reason={quote(reason)}&actor=alice",
            headers=_auth(cmesh, "n0"))
        assert deleted.status == 200, deleted.body
    # n4 back without seeds: nobody reaches it, it takes an update of each deleted key.
    isolated = cmesh.start(4, join_node=4)
    for index in KEYS.values():
        assert isolated.add(with_user_id(index, f"Carol {index} <carol@example.org>")).status == 200
    assert isolated.stop() == 0
    cmesh.start(4)  # rejoins: anti-entropy meets the deletes with the concurrent updates

    spam, keep, ask = (fingerprint(i) for i in KEYS.values())

    def by_rules() -> bool:
        return all([c["fingerprint"] for c in _conflicts(cmesh, n)] == [ask]
                   and _found(cmesh, n, KEYS["spam"]) == 404 and _found(cmesh, n, KEYS["keep-it"]) == 200
                   for n in nodes)

    wait_until(by_rules, 40, "the rules decided spam and keep-it on every node, ask left",
               lambda: {n: [(c["fingerprint"][:8], c["policy"]) for c in _conflicts(cmesh, n)]
                        for n in nodes})
    manual = _conflicts(cmesh, "n2")[0]
    assert manual["policy"] == "manual" and manual["delete"]["reason"] == "ask"
    # With the founder's bootstrap token, the named admin "admin" every node knows: it signs
    # the lift (a node's own bootstrap token would get 403, as no admin table names it).
    resolved = cmesh.servers["n2"].request(
        "POST", f"/cluster/conflicts/{manual['id']}/resolve", headers=_auth(cmesh, "n0"),
        body=json.dumps({"keep": "update"}).encode())
    assert resolved.status == 200, resolved.body
    again = cmesh.servers["n3"].request(
        "POST", f"/cluster/conflicts/{manual['id']}/resolve", headers=_auth(cmesh, "n3"),
        body=json.dumps({"keep": "delete"}).encode())
    assert again.status == 409  # decided once

    wait_until(lambda: all(not _conflicts(cmesh, n) and _found(cmesh, n, KEYS["ask"]) == 200
                           for n in nodes), 30, "the manual decision on every node")
    wait_until(lambda: len(_roots(cmesh)) == 1, 30, "equal Merkle roots", lambda: _roots(cmesh))
    # The data converges by anti-entropy (AP), the audit trail with the log (CP): a node that
    # was away may hold the resolved records before it has applied their entries.
    wait_until(lambda: all(len(_resolutions(cmesh, n)) >= 3 for n in nodes), 30,
               "every resolution in every node's audit trail",
               lambda: {n: len(_resolutions(cmesh, n)) for n in nodes})
    for node in nodes:
        trail = _resolutions(cmesh, node)
        decided = {fp: [e for e in trail if fp.lower() in e["detail"]] for fp in (spam, keep, ask)}
        assert all(len(entries) == 1 for entries in decided.values()), (node, trail)
        for fp, keep_what, actor in ((spam, "delete", "policy delete-wins"),
                                     (keep, "update", "policy update-wins"), (ask, "update", "admin")):
            assert f"keep {keep_what}" in decided[fp][0]["detail"] and decided[fp][0]["actor"] == actor
    assert len({json.dumps(_resolutions(cmesh, n), sort_keys=True) for n in nodes}) == 1
