"""The applied policy on five real `meshkp serve --mesh` processes: limits, blacklist, catch-up.

- n4 is started with `--limit uid_bytes=64`, which would make it refuse every peer record
  with a longer user ID (Hockeypuck #108: peers with different filters never converge). The
  cluster policy replaces its limits: it says so at start, takes such a key by replication,
  and every node ends with equal Merkle roots.
- A limit changed through the policy takes effect on every node (a long search is refused).
- A blacklisted fingerprint disappears from every node's lookups, is refused on upload (403
  with the reason), and the Merkle roots stay equal (the records stay; only views filter).
- n4 stopped through 3 policy changes catches up on restart by log (no snapshot installed);
  stopped again through more changes than the log keeps (`snapshot_threshold` 40,
  `trailing_logs` 8 in its config file), it catches up by snapshot, blacklist included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.control_mesh import ControlMesh, wait_until
from tests.integration.replication_mesh import armored, fingerprint, with_user_id

pytestmark = pytest.mark.integration

LONG_UID = "Very Long Name " + "x" * 80 + " <long@example.org>"


def _admin(cmesh: ControlMesh, node: str, body: dict[str, object]) -> dict:
    server = cmesh.servers[node]
    token = (server.data_dir / "admin.token").read_text().strip()
    reply = server.request("PUT", "/cluster/policy", body=json.dumps(body).encode(),
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[return-value]


def _roots(cmesh: ControlMesh) -> set[str]:
    return {json.loads(s.request("GET", "/cluster/sync/status").body)["merkle_root"]
            for s in cmesh.running().values()}


def _found(cmesh: ControlMesh, node: str, fpr: str) -> int:
    return cmesh.servers[node].lookup(op="get", search="0x" + fpr).status


def test_policy_limits_blacklist_and_catch_up_on_five_processes(cmesh: ControlMesh, tmp_path: Path) -> None:
    config = tmp_path / "consensus.toml"
    config.write_text("[cluster.consensus]\nsnapshot_threshold = 40\ntrailing_logs = 8\n")
    n4_args = ("--config", str(config), "--limit", "uid_bytes=64")
    for i in range(4):
        cmesh.start(i, extra=("--config", str(config)))
    cmesh.start(4, extra=n4_args)
    voters = lambda: cmesh.get("n0", "/cluster/consensus").get("voters", [])  # noqa: E731
    wait_until(lambda: len(voters()) == 5, 60, "5 voters", voters)
    nodes = sorted(cmesh.servers)

    # n4's own uid_bytes is replaced by the policy's: it takes the long user ID by replication.
    wait_until(lambda: "event=control_limits_differ" in cmesh.servers["n4"].log_text(), 20,
               "n4 says its --limit differs from the policy")
    assert "uid_bytes=64(policy:2048)" in cmesh.servers["n4"].log_text()
    assert cmesh.servers["n0"].add(armored(950)).status == 200
    assert cmesh.servers["n0"].add(with_user_id(950, LONG_UID)).status == 200
    long_key = fingerprint(950)
    wait_until(lambda: all("Very Long Name" in cmesh.servers[n].lookup(
        op="index", search="0x" + long_key, options="mr").text for n in nodes), 20,
        "the long user ID on every node")
    wait_until(lambda: len(_roots(cmesh)) == 1, 20, "equal Merkle roots", lambda: _roots(cmesh))

    # A limit changed through the policy takes effect on every node.
    long_search = "a" * 60  # a fingerprint search (42 characters) stays under the limit
    assert {cmesh.servers[n].lookup(op="index", search=long_search).status for n in nodes} == {404}
    _admin(cmesh, "n2", {"limits": {"search_chars": 50}})
    wait_until(lambda: cmesh.limit_everywhere("search_chars", 50), 10, "search_chars everywhere")
    refused = {n: cmesh.servers[n].lookup(op="index", search=long_search) for n in nodes}
    assert all(r.status in (400, 413, 414) and "search_chars" in r.text for r in refused.values()), refused

    # The blacklist: gone from every node's lookups, refused on upload, roots still equal.
    assert cmesh.servers["n1"].add(armored(951)).status == 200
    banned = fingerprint(951)
    wait_until(lambda: all(_found(cmesh, n, banned) == 200 for n in nodes), 20, "the key everywhere")
    _admin(cmesh, "n3", {"blacklist": {"add": {banned: "court order 951"}}})
    wait_until(lambda: all(_found(cmesh, n, banned) == 404 for n in nodes), 10, "hidden everywhere")
    again = cmesh.servers["n2"].add(armored(951))
    assert again.status == 403 and "court order 951" in again.text
    wait_until(lambda: len(_roots(cmesh)) == 1, 20, "equal roots with the blacklist", lambda: _roots(cmesh))

    # n4 stopped through 3 policy changes catches up by log.
    assert cmesh.servers["n4"].stop() == 0
    for value in (31, 32, 33):
        policy = _admin(cmesh, "n0", {"limits": {"search_results": value}})["policy"]
    cmesh.start(4, extra=n4_args)
    wait_until(lambda: cmesh.get("n4", "/cluster/policy").get("version") == policy["version"], 20,
               "n4 caught up by log", lambda: cmesh.get("n4", "/cluster/consensus"))
    assert cmesh.get("n4", "/cluster/consensus")["snapshots_installed"] == 0

    # Stopped again through more changes than the log keeps: by snapshot, blacklist included.
    assert cmesh.servers["n4"].stop() == 0
    for value in range(60):
        policy = _admin(cmesh, "n1", {"limits": {"search_results": 100 + value}})["policy"]
    leader = cmesh.agreed_leader()
    assert leader is not None
    assert cmesh.get(leader, "/cluster/consensus")["snapshot_index"] > 0
    cmesh.start(4, extra=n4_args)
    wait_until(lambda: cmesh.get("n4", "/cluster/policy").get("version") == policy["version"], 30,
               "n4 caught up by snapshot", lambda: cmesh.get("n4", "/cluster/consensus"))
    assert cmesh.get("n4", "/cluster/consensus")["snapshots_installed"] >= 1
    assert cmesh.get("n4", "/cluster/policy")["limits"]["search_results"] == 159
    assert _found(cmesh, "n4", banned) == 404
    wait_until(lambda: len(_roots(cmesh)) == 1, 20, "equal roots after the catch-up", lambda: _roots(cmesh))
