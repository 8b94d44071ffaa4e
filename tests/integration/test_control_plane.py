"""Five real `meshkp serve --mesh` processes on loopback run one control plane.

n0 starts without seeds and founds the cluster; n1..n4 join it through SWIM and the leader's
autopilot adds them as learners and promotes them. Then: every node agrees on
/cluster/leader; a policy change sent to a follower applies on every node; SIGSTOP of 3 nodes
leaves a minority of 2 that answers 503 (with Retry-After) to policy changes but keeps serving
and accepting keys; after SIGCONT the 5 agree again; kill -9 of the leader elects a new one and
a change made right after it succeeds. Timers: `--gossip-profile test`, `--control-profile local`.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Response, meshkp_cli, start_server
from tests.integration.control_mesh import ControlMesh, wait_until
from tests.integration.replication_mesh import armored, fingerprint

pytestmark = pytest.mark.integration



def test_five_processes_share_one_control_plane(cmesh: ControlMesh) -> None:
    for i in range(cmesh.size):
        cmesh.start(i)
    voters = lambda: cmesh.get("n0", "/cluster/consensus").get("voters", [])  # noqa: E731
    wait_until(lambda: len(voters()) == cmesh.size, 40, "5 voters", voters)
    wait_until(lambda: cmesh.agreed_leader() == "n0", 10, "all agree n0 leads", cmesh.leaders)
    assert cmesh.get("n0", "/cluster/leader")["authoritative"] is True
    assert cmesh.get("n3", "/cluster/leader")["leader_http"] == cmesh.servers["n0"].url.removeprefix("http://")

    # A change sent to a follower: answered once applied there, then applied everywhere.
    reply = cmesh.put_policy("n3", {"search_results": 77})
    assert reply.status == 200, reply.body
    assert cmesh.get("n3", "/cluster/policy")["limits"]["search_results"] == 77
    wait_until(lambda: cmesh.limit_everywhere("search_results", 77), 5, "the change everywhere")
    audit = cmesh.get("n1", "/cluster/audit?after=0&limit=500")["entries"]
    assert [e for e in audit if e["detail"] == "set limits search_results=77"][0]["actor"] == "admin"

    # SIGSTOP of 3 (the leader among them): the 2 left refuse policy changes with a 503 in
    # bounded time, and still serve and accept keys.
    paused = ["n0", "n1", "n2"]
    for node in paused:
        cmesh.servers[node].proc.send_signal(signal.SIGSTOP)
        cmesh.stopped.add(node)
    began = time.monotonic()
    refused = cmesh.put_policy("n4", {"search_results": 5})
    assert refused.status == 503, refused.body
    assert time.monotonic() - began < 10
    assert int(refused.headers["retry-after"]) >= 1
    assert "leader" in refused.json()  # type: ignore[operator]
    # A timeout is indeterminate (the request may sit in the stopped leader's socket), and the
    # answer says so instead of promising that nothing happened.
    assert "may still apply" in refused.text, refused.body
    added = cmesh.servers["n4"].add(armored(901))
    assert added.status == 200, added.text
    assert cmesh.servers["n3"].lookup(op="get", search="0x" + fingerprint(901)).status in (200, 404)
    assert cmesh.servers["n4"].lookup(op="get", search="0x" + fingerprint(901)).status == 200

    # SIGCONT: the 5 agree again, on one value: 77, or 5 where the stalled leader took the
    # forwarded change when it ran again (the 503 said it may).
    for node in paused:
        cmesh.servers[node].proc.send_signal(signal.SIGCONT)
        cmesh.stopped.discard(node)
    wait_until(lambda: cmesh.agreed_leader() is not None, 15, "agreement after SIGCONT", cmesh.leaders)
    # Waited for, not asserted at once: a node just resumed may answer its first reads late.
    wait_until(lambda: cmesh.limit_everywhere("search_results", 77)
               or cmesh.limit_everywhere("search_results", 5), 10, "one value (77 or 5) everywhere",
               lambda: cmesh.limits_of("search_results"))

    # kill -9 of the leader: a new one, and a change right after succeeds.
    leader = cmesh.agreed_leader()
    assert leader is not None
    cmesh.servers[leader].proc.kill()
    cmesh.servers[leader].proc.wait(10)
    asker = sorted(n for n in cmesh.running())[0]
    reply = cmesh.put_policy(asker, {"search_results": 88})
    assert reply.status == 200, reply.body
    wait_until(lambda: cmesh.agreed_leader() not in (None, leader), 10, "a new leader", cmesh.leaders)
    wait_until(lambda: cmesh.limit_everywhere("search_results", 88), 5, "the change after failover")


def test_a_node_without_a_mesh_has_a_working_control_plane(tmp_path: Path) -> None:
    data = tmp_path / "solo"
    server = start_server(data, "--limit", "search_results=150")
    try:
        node = ["--node", server.url]
        token = ["--data-dir", str(data)]
        shown = meshkp_cli("leader", *node)
        assert shown.returncode == 0 and "(authoritative" in shown.stdout, shown
        policy = json.loads(meshkp_cli("policy", "get", *node).stdout)
        assert policy["limits"]["search_results"] == 150  # seeded from the node's own --limit
        assert meshkp_cli("policy", "set", "search_results=120", *node).returncode != 0  # no token
        changed = meshkp_cli("policy", "set", "search_results=120", *node, *token)
        assert changed.returncode == 0, changed.stderr
        bad = meshkp_cli("policy", "set", "no_such_limit=1", *node, *token)
        assert bad.returncode == 1 and "unknown limit" in bad.stderr
        assert meshkp_cli("routing", "set", "drain=true", "zone=eu", *node, *token).returncode == 0
        routes = json.loads(meshkp_cli("routing", "get", *node).stdout)["nodes"]
        assert list(routes.values()) == [{"weight": 100, "drain": True, "read_only": False, "zone": "eu"}]
        admin = {"Authorization": "Bearer " + (data / "admin.token").read_text().strip()}
        rules = server.request("PUT", "/cluster/conflicts/policies",
                               body=json.dumps({"default": "manual"}).encode(), headers=admin)
        assert rules.status == 200, rules.body
        assert server.request("GET", "/cluster/conflicts/policies").json()["rules"]["delete-update"][  # type: ignore[index]
            "default"] == "manual"
        # The blacklist: added and listed through the CLI, an upload of it refused with the
        # reason, a malformed fingerprint a 400 with nothing proposed, then removed again.
        banned = armored(902)
        assert server.add(banned).status == 200
        fpr = fingerprint(902)
        added = meshkp_cli("policy", "blacklist", "add", fpr, "--reason", "court order", *node, *token)
        assert added.returncode == 0, added.stderr
        listed = meshkp_cli("policy", "blacklist", "list", *node)
        assert fpr.upper() in listed.stdout and "court order" in listed.stdout
        assert server.lookup(op="get", search="0x" + fpr).status == 404
        refused = server.add(banned)
        assert refused.status == 403 and "court order" in refused.text
        junk = server.request("PUT", "/cluster/policy", headers=admin,
                              body=json.dumps({"blacklist": {"add": {"zz12": "x"}}}).encode())
        assert junk.status == 400 and "not a hex fingerprint" in junk.text
        both = server.request("PUT", "/cluster/policy", headers=admin,
                              body=json.dumps({"limits": {}, "blacklist": {"remove": [fpr]}}).encode())
        assert both.status == 400 and "one change per request" in both.text
        assert meshkp_cli("policy", "blacklist", "remove", fpr, *node, *token).returncode == 0
        assert server.lookup(op="get", search="0x" + fpr).status == 200
        trail = meshkp_cli("audit", *node)
        assert "set limits search_results=120" in trail.stdout and "routing" in trail.stdout
        assert server.request("GET", "/cluster/members/nobody").status == 404
        consensus = server.request("GET", "/cluster/consensus").json()
        assert consensus["role"] == "leader" and consensus["lease_remaining"] > 0  # type: ignore[index]
        metrics = server.request("GET", "/metrics").body.decode()
        for name in ("meshkp_control_term", "meshkp_control_commit_index",
                     "meshkp_control_applied_index", "meshkp_control_leader_changes_total",
                     "meshkp_control_lease_remaining_seconds",
                     "meshkp_control_proposals_committed_total 5.0",
                     "meshkp_control_proposals_failed_total 1.0",  # the unknown limit
                     "meshkp_control_snapshot_installs_total"):
            assert name in metrics, name
    finally:
        server.stop()
    # Restarted with other --limit values: the policy wins, and the node says how to change it.
    server = start_server(data, "--limit", "search_results=150")
    try:
        policy = json.loads(meshkp_cli("policy", "get", "--node", server.url).stdout)
        assert policy["limits"]["search_results"] == 120
        wait_until(lambda: "event=control_limits_differ" in server.log_path.read_text(), 10,
                   "the differing --limit warning")
        assert "PUT_/cluster/policy" in server.log_path.read_text()
    finally:
        server.stop()
        server.assert_no_bugs()


@pytest.mark.slow
def test_seven_processes_keep_five_voters_replace_a_dead_one_and_refuse_a_removed_one(
        tmp_path: Path) -> None:
    mesh = ControlMesh(tmp_path, size=7)
    try:
        for i in range(mesh.size):
            mesh.start(i)

        def roles() -> dict[str, int]:
            status = mesh.get("n0", "/cluster/consensus")
            return {"voters": len(status.get("voters", [])), "learners": len(status.get("learners", []))}

        wait_until(lambda: roles() == {"voters": 5, "learners": 2}, 90, "5 voters, 2 learners", roles)
        voters = [v["id"] for v in mesh.get("n0", "/cluster/consensus")["voters"]]
        victim = sorted(v for v in voters if v != "n0")[0]
        mesh.servers[victim].proc.kill()
        mesh.servers[victim].proc.wait(10)

        def voter_ids() -> list[str]:
            return [v["id"] for v in mesh.get("n0", "/cluster/consensus").get("voters", [])]

        # local profile: replaced once SWIM has said "dead" for 5 s.
        wait_until(lambda: victim not in voter_ids() and len(voter_ids()) == 5, 90,
                   f"{victim} replaced", voter_ids)
        token = (mesh.servers["n0"].data_dir / "admin.token").read_text().strip()

        def remove() -> Response:
            return mesh.servers["n0"].request("DELETE", f"/cluster/members/{victim}",
                                              headers={"Authorization": f"Bearer {token}"})

        # The autopilot's promotion may still be uncommitted (one change at a time): that is a
        # 503 with Retry-After, which a client retries.
        removed = remove()
        for _ in range(20):
            if removed.status != 503 or b"one change at a time" not in removed.body:
                break
            time.sleep(0.5)
            removed = remove()
        assert removed.status == 200, removed.body
        assert mesh.get("n0", f"/cluster/members/{victim}")["role"] == "removed"
        comeback = mesh.start(int(victim.removeprefix("n")))
        wait_until(lambda: "event=control_removed" in comeback.log_path.read_text(), 20,
                   "the removed node told it was removed")
        assert victim not in voter_ids()
    finally:
        mesh.close()
