"""Replication peers come from live membership: nodes joined by gossip replicate with no --replication-peer.

The replication port defaults to gossip port + 1 and is announced in the member meta ("sync").
Test gossip ports come from the ephemeral range, where port + 1 is often held by some outgoing
connection on a busy machine: a node must then listen on a free port and announce that one,
not fail to start (what made the three-node test fail on loaded CI machines).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.replication_mesh import armored, fingerprint, wait_until
from tests.ports import free_port

pytestmark = pytest.mark.integration

COMMON = ["--gossip-profile", "test", "--no-access-log", "--sync-interval", "1"]


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "cluster.key"
    write_key_file(key, [generate_key()], overwrite=True)
    return key


def _members(node: ServerProcess) -> dict[str, dict]:
    nodes = json.loads(node.request("GET", "/cluster/nodes").body)["nodes"]
    return {n["id"]: n for n in nodes}


def _alive_everywhere(nodes: list[ServerProcess]) -> bool:
    return all(len(ms) == len(nodes) and all(m["status"] == "alive" for m in ms.values())
               for ms in map(_members, nodes))


def test_three_gossip_joined_nodes_replicate(tmp_path: Path) -> None:
    key = _key(tmp_path)
    ports = [free_port() for _ in range(3)]
    nodes = []
    try:
        for i, port in enumerate(ports):
            join = [f"--join=127.0.0.1:{ports[0]}"] if i else []
            nodes.append(start_server(tmp_path / f"g{i}", "--node-id", f"g{i}", "--mesh", "--gossip-port",
                                      str(port), "--cluster-key-file", str(key), *COMMON, *join))
        wait_until(lambda: _alive_everywhere(nodes), 30, "membership of 3, all alive")
        assert nodes[2].add(armored(700)).status == 200
        wait_until(lambda: all(n.lookup(op="get", search="0x" + fingerprint(700)).status == 200
                               for n in nodes), 30, "the key on every node")
        status = json.loads(nodes[0].request("GET", "/cluster/sync/status").body)
        assert status["sync_addr"] is not None
    finally:
        for node in nodes:
            node.stop()


def _gossip_port_with_next_taken() -> tuple[int, socket.socket]:
    """A free gossip port whose port + 1 (the default sync port) we hold with a listener."""
    for _ in range(50):
        port = free_port()
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            blocker.bind(("127.0.0.1", port + 1))
            blocker.listen()
            return port, blocker
        except OSError:  # port + 1 in use by a live connection: try another
            blocker.close()
    raise AssertionError("no gossip port with a free port + 1 found in 50 tries")


def test_a_taken_default_sync_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    key = _key(tmp_path)
    gossip, blocker = _gossip_port_with_next_taken()
    ports = [free_port(), gossip]
    nodes = []
    try:
        for i, port in enumerate(ports):
            join = [f"--join=127.0.0.1:{ports[0]}"] if i else []
            nodes.append(start_server(tmp_path / f"f{i}", "--node-id", f"f{i}", "--mesh", "--gossip-port",
                                      str(port), "--cluster-key-file", str(key), *COMMON, *join))
        sync_addr = json.loads(nodes[1].request("GET", "/cluster/sync/status").body)["sync_addr"]
        assert sync_addr != f"127.0.0.1:{ports[1] + 1}"
        # Node 0 learns the real port from the gossiped meta and replicates both ways.
        wait_until(lambda: _members(nodes[0]).get("f1", {}).get("meta", {}).get("sync") == sync_addr,
                   30, "the fallback port in node 0's view of node 1")
        assert nodes[0].add(armored(710)).status == 200
        assert nodes[1].add(armored(711)).status == 200
        wait_until(lambda: all(n.lookup(op="get", search="0x" + fingerprint(k)).status == 200
                               for n in nodes for k in (710, 711)), 30, "both keys on both nodes")
        assert "event=sync_port_fallback" in nodes[1].log_text()
    finally:
        blocker.close()
        for node in nodes:
            node.stop()
