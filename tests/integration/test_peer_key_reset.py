"""Resetting a pinned node key on real `meshkp serve --mesh` processes (issue 12).

n2 has a configured id (`--node-id n2`), which its peers pinned to its first key. It gets a
new identity under the same id (its node.key is gone, as after `meshkp restore` of a backup
taken elsewhere): its peers refuse every frame of it (`identity`). `meshkp members reset-key n2
--key NEWKEY` goes through the control plane; every node then pins the new key, n2 is a member
again, and the audit trail names the admin who did it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import meshkp_cli
from tests.integration.control_mesh import ControlMesh, wait_until

pytestmark = pytest.mark.integration


def status_of(mesh: ControlMesh, observer: str, node: str) -> str | None:
    for member in mesh.get(observer, "/cluster/nodes").get("nodes", []):
        if member.get("id") == node:
            return str(member.get("status"))
    return None


def identity_drops(mesh: ControlMesh, node: str) -> int:
    dropped = mesh.get(node, "/cluster/status").get("net", {}).get("frames_dropped", {})
    return sum(count for key, count in dropped.items() if key.endswith("identity"))


def test_a_node_with_a_new_identity_is_let_back_in_by_a_key_reset(tmp_path: Path) -> None:
    mesh = ControlMesh(tmp_path, size=3)
    try:
        for i in range(3):
            mesh.start(i)
        wait_until(lambda: all(status_of(mesh, o, "n2") == "alive" for o in ("n0", "n1")), 30,
                   "n2 alive everywhere")
        old_key = mesh.get("n2", "/cluster/status")["identity"]["key"]
        assert mesh.servers["n2"].stop() == 0
        (mesh.servers["n2"].data_dir / "node.key").unlink()  # a new identity, the same id
        mesh.start(2)
        new_key = mesh.get("n2", "/cluster/status")["identity"]["key"]
        assert new_key != old_key
        wait_until(lambda: identity_drops(mesh, "n0") > 0, 20, "n2's new key refused by n0")
        # Its answers to n0's probes are dropped, so n0 soon suspects it, and it cannot refute.
        wait_until(lambda: status_of(mesh, "n0", "n2") in ("suspect", "dead"), 30,
                   "n0 no longer holding n2 alive")

        n0 = mesh.servers["n0"]
        reset = meshkp_cli("members", "reset-key", "n2", "--key", new_key, "--node", n0.url,
                           "--data-dir", str(n0.data_dir))
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert "key of n2 reset" in reset.stdout
        wait_until(lambda: all(status_of(mesh, o, "n2") == "alive" for o in ("n0", "n1")), 30,
                   "n2 alive again with its new key")
        token = (n0.data_dir / "admin.token").read_text().strip()
        audit = json.loads(n0.request("GET", "/cluster/audit",
                                      headers={"Authorization": f"Bearer {token}"}).body)
        entries = [e for e in audit["entries"] if e["op"] == "reset-peer-key"]
        assert entries and entries[-1]["actor"] == "admin", audit
        assert "event=peer_key_reset node='n2'" in mesh.servers["n1"].log_text()
    finally:
        mesh.close()
    for server in mesh.servers.values():
        server.assert_no_bugs()
