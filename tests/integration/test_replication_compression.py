"""[cluster.replication] compression = "zlib" between real processes, beside a node with "none".

Node n0 compresses what it sends, n1 does not: both announce that they decode marked frames, so
n0's pushes reach n1 compressed and n1 still answers in plain frames; keys replicate both ways
and the counters on /metrics show what zlib did.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.control_mesh import ControlMesh, wait_until
from tests.integration.replication_mesh import armored


def _metric(server, name: str) -> float:  # type: ignore[no-untyped-def]
    text = server.request("GET", "/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_zlib_node_and_a_plain_node_replicate_both_ways(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = ControlMesh(tmp_path, size=2)
    try:
        monkeypatch.setenv("MESHKP_CLUSTER_REPLICATION_COMPRESSION", "zlib")
        n0 = mesh.start(0)
        monkeypatch.setenv("MESHKP_CLUSTER_REPLICATION_COMPRESSION", "none")
        n1 = mesh.start(1)
        wait_until(lambda: mesh.agreed_leader() is not None, 30, "a leader")
        batch = "\n".join(armored(i, seed=b"zc") for i in range(30))
        assert n0.add(batch).status == 200
        wait_until(lambda: n1.key_count() == 30, 30, "n1 holds n0's 30 keys")
        assert n1.add(armored(99, seed=b"zc")).status == 200
        wait_until(lambda: n0.key_count() == 31, 30, "n0 holds n1's key")
        assert _metric(n0, "meshkp_replication_compressed_frames_total") >= 1
        before = _metric(n0, "meshkp_replication_compression_input_bytes_total")
        after = _metric(n0, "meshkp_replication_compression_output_bytes_total")
        assert 0 < after < before
        assert _metric(n1, "meshkp_replication_inflated_frames_total") >= 1
        assert _metric(n1, "meshkp_replication_compressed_frames_total") == 0  # "none" sends plain
        for server in (n0, n1):
            server.assert_no_bugs()
    finally:
        for server in mesh.servers.values():
            server.stop()
