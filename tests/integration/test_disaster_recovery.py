"""A corrupted store, then a lost node (docs/disaster-recovery.md), with real processes.

A 3-node mesh holds keys; node n1 is killed and its LevelDB damaged. Started again, it refuses
with the message of docs/troubleshooting.md instead of serving from a broken store. Its data is
then given up for lost: a fresh data directory (so a new node id) joins, copies the keys from
its peers and converges, and the old id is removed from the control plane for good.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, meshkp_cli, start_server
from tests.integration.control_mesh import wait_until
from tests.integration.replication_mesh import armored
from tests.integration.test_membership import gossip_port
from tests.integration.voter_mesh import formed, merkle_root


# ~15 s of three nodes and a fourth: in `make test-slow`, beside the default suite's
# test_backup_restore.py, which runs the same rejoin after a restore.
@pytest.mark.slow
def test_a_corrupted_store_refuses_to_start_and_a_fresh_node_takes_its_place(tmp_path: Path) -> None:
    mesh = formed(tmp_path)
    try:
        n0 = mesh.servers["n0"]
        assert n0.add("\n".join(armored(i, seed=b"dr") for i in range(20))).status == 200
        n1 = mesh.servers["n1"]
        wait_until(lambda: n1.key_count() == 20, 30, "n1 holds the 20 keys")
        n1.stop(signal.SIGKILL)
        mesh.stopped.add("n1")

        manifest = next((n1.data_dir / "keys").glob("MANIFEST-*"))
        data = bytearray(manifest.read_bytes())
        for i in range(10, len(data), 7):
            data[i] ^= 0xFF
        manifest.write_bytes(bytes(data))
        again = subprocess.run(
            [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(n1.data_dir),
             "--http-port", "0", "--mesh", "--gossip-port", str(gossip_port()),
             "--cluster-key-file", str(mesh.key_file), "--no-access-log"],
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert again.returncode != 0
        assert "is damaged" in again.stderr and "move" in again.stderr
        assert "meshkp restore FILE --data-dir DIR" in again.stderr
        assert "Traceback" not in again.stderr

        # Lost for good: a new, empty data dir (a new node.key, so a new id) takes its place.
        shutil.rmtree(n1.data_dir)
        fresh = start_server(tmp_path / "fresh", "--mesh", "--gossip-port", str(gossip_port()),
                             "--cluster-key-file", str(mesh.key_file), "--gossip-profile", "test",
                             "--control-profile", "local", "--no-access-log",
                             "--join", f"127.0.0.1:{mesh.ports[0]}", timeout=60)
        mesh.servers["fresh"] = fresh
        wait_until(lambda: fresh.key_count() == 20 and merkle_root(fresh) == merkle_root(n0), 60,
                   "the fresh node copies its peers' keys")
        # n1 may have led: until the other two voters elect one of them, the removal answers
        # 503 "retry later", and the operator retries.
        attempts = []

        def remove_n1() -> bool:
            attempts.append(meshkp_cli("members", "remove", "--node", n0.url, "--data-dir",
                                       str(n0.data_dir), "n1"))
            return attempts[-1].returncode == 0

        wait_until(remove_n1, 60, "meshkp members remove n1", state=lambda: attempts[-1].stderr)
        assert "removed" in attempts[-1].stdout
        assert n0.request("GET", "/cluster/members/n1").json() == {"id": "n1", "role": "removed"}
        fresh.assert_no_bugs()
    finally:
        for server in mesh.servers.values():
            server.stop()
