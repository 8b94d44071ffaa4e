"""Backup of a live node, wipe, restore, rejoin (docs/disaster-recovery.md "Restore from backup").

Real processes: a 3-node mesh with a control plane, `meshkp backup` over HTTP while the node
serves, keys written after the backup, the node killed and its data dir wiped, `meshkp
restore`, and the restored node started with --join: it has a new id, the backup's Merkle root
before it starts, and converges with its peers (the keys written since the backup included).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import pytest

from meshkp.keys.merkle_index import MerkleIndex
from meshkp.store.leveldb import LevelDBStore
from tests.integration.conftest import meshkp_cli, start_server
from tests.integration.control_mesh import wait_until
from tests.integration.replication_mesh import armored, fingerprint
from tests.integration.test_membership import gossip_port
from tests.integration.voter_mesh import formed, merkle_root


@pytest.mark.parametrize("keep_control", [
    False,
    # The Raft state kept: the new id joins as a learner whose log is a prefix of the leader's.
    pytest.param(True, marks=pytest.mark.slow),
])
def test_backup_a_live_node_wipe_restore_and_it_rejoins(tmp_path: Path, keep_control: bool) -> None:
    mesh = formed(tmp_path)
    try:
        n0 = mesh.servers["n0"]
        for i in range(12):
            assert n0.add(armored(i, seed=b"bk")).status == 200
        n1 = mesh.servers["n1"]
        wait_until(lambda: len({merkle_root(s) for s in mesh.running().values()}) == 1
                   and n1.key_count() == 12, 30, "the 3 nodes agree on 12 keys")
        root_at_backup = merkle_root(n1)

        out = tmp_path / "n1.backup"
        done = meshkp_cli("backup", "--node", n1.url, "--data-dir", str(n1.data_dir),
                          "--out", str(out), "--no-progress")
        assert done.returncode == 0, done.stderr
        assert root_at_backup in done.stdout and "12 records" in done.stdout

        for i in range(12, 16):  # written after the backup: the restored node must catch up
            assert n0.add(armored(i, seed=b"bk")).status == 200
        n1.stop(signal.SIGKILL)
        mesh.stopped.add("n1")
        shutil.rmtree(n1.data_dir / "keys")  # the disk is lost; cluster.key, admin.token stay

        again = meshkp_cli("restore", str(out), "--data-dir", str(n1.data_dir), "--no-progress")
        assert again.returncode == 1 and "--force" in again.stderr  # not an empty dir
        restored = meshkp_cli("restore", str(out), "--data-dir", str(n1.data_dir), "--force",
                              "--no-progress", *(["--keep-control"] if keep_control else []))
        assert restored.returncode == 0, restored.stderr
        found = re.search(r"new node id (\w+)", restored.stdout)
        assert found is not None, restored.stdout
        new_id = found.group(1)
        assert new_id != "n1"
        store = LevelDBStore(n1.data_dir / "keys")
        try:
            assert MerkleIndex().root_hex(store) == root_at_backup
        finally:
            store.close()

        node = start_server(n1.data_dir, "--mesh", "--gossip-port", str(gossip_port()),
                            "--cluster-key-file", str(mesh.key_file), "--gossip-profile", "test",
                            "--control-profile", "local", "--no-access-log",
                            "--join", f"127.0.0.1:{mesh.ports[0]}", timeout=60)
        mesh.servers[new_id] = node
        assert json.loads(node.request("GET", "/cluster/status").body)["id"] == new_id
        wait_until(lambda: node.key_count() == 16 and merkle_root(node) == merkle_root(n0), 60,
                   "the restored node converges with its peers",
                   state=lambda: (node.key_count(), merkle_root(node), merkle_root(n0)))
        assert node.lookup(op="get", search="0x" + fingerprint(15, seed=b"bk")).status == 200
        members = json.loads(n0.request("GET", "/cluster/nodes").body)["nodes"]
        assert {m["id"]: m["status"] for m in members}.get(new_id) == "alive"
        # The restored node follows the cluster's control plane: it applies a change made now.
        token = (n0.data_dir / "admin.token").read_text().strip()
        changed = n0.request("PUT", "/cluster/policy", body=b'{"limits": {"search_results": 42}}',
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
        assert changed.status == 200, changed.text
        wait_until(lambda: node.request("GET", "/cluster/policy").json()["limits"]["search_results"]
                   == 42, 30, "the restored node applies a policy change")
        node.assert_no_bugs()
    finally:
        for server in mesh.servers.values():
            server.stop()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_backup_restores_nothing(meshkp_server, tmp_path: Path, damage: str) -> None:  # type: ignore[no-untyped-def]
    assert meshkp_server.add(armored(1, seed=b"dmg")).status == 200
    out = tmp_path / "one.backup"
    done = meshkp_cli("backup", "--node", meshkp_server.url, "--data-dir",
                      str(meshkp_server.data_dir), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    data = bytearray(out.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2:]
    else:
        data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    target = tmp_path / "target"
    failed = meshkp_cli("restore", str(out), "--data-dir", str(target), "--no-progress")
    assert failed.returncode == 1
    assert "corrupt" in failed.stderr or "truncated" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (target / "keys").exists()
