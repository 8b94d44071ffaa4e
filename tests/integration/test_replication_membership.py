"""Replication peers come from live membership: nodes joined by gossip replicate with no --sync-peer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import start_server
from tests.integration.replication_mesh import armored, fingerprint, free_port, wait_until

pytestmark = pytest.mark.integration


def test_three_gossip_joined_nodes_replicate(tmp_path: Path) -> None:
    key = tmp_path / "cluster.key"
    write_key_file(key, [generate_key()], overwrite=True)
    ports = [free_port() for _ in range(3)]
    common = ["--cluster-key-file", str(key), "--gossip-profile", "test", "--no-access-log",
              "--sync-interval", "1"]
    nodes = []
    try:
        for i, port in enumerate(ports):
            join = [f"--join=127.0.0.1:{ports[0]}"] if i else []
            nodes.append(start_server(tmp_path / f"g{i}", "--node-id", f"g{i}", "--gossip-port",
                                      str(port), *common, *join))
        def peers_seen() -> bool:
            return all(len(json.loads(n.request("GET", "/cluster/nodes").body)["nodes"]) == 3
                       for n in nodes)

        wait_until(peers_seen, 20, "membership of 3")
        assert nodes[2].add(armored(700)).status == 200
        wait_until(lambda: all(n.lookup(op="get", search="0x" + fingerprint(700)).status == 200
                               for n in nodes), 15, "the key on every node")
        status = json.loads(nodes[0].request("GET", "/cluster/sync/status").body)
        assert status["sync_addr"] is not None
    finally:
        for node in nodes:
            node.stop()
