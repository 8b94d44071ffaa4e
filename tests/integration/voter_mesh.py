"""A ControlMesh whose every node is a voter, for tests that then lose one of them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import ServerProcess
from tests.integration.control_mesh import ControlMesh, wait_until


def formed(root: Path, size: int = 3) -> ControlMesh:
    """`size` nodes started (n0 founds), and every one a voter: with fewer voters than nodes,
    losing one node can lose the majority (two voters of three nodes: one left of two)."""
    mesh = ControlMesh(root, size=size)
    try:
        for i in range(size):
            mesh.start(i)
        voters = lambda: mesh.get("n0", "/cluster/consensus").get("voters", [])  # noqa: E731
        wait_until(lambda: len(voters()) == size, 60, f"{size} voters", voters)
    except BaseException:
        for server in mesh.servers.values():
            server.stop()
        raise
    return mesh


def merkle_root(server: ServerProcess) -> str:
    return str(json.loads(server.request("GET", "/cluster/sync/status").body)["merkle_root"])
