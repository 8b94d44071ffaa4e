"""`meshkp dev --top` under tmux: the 3-node dev mesh comes up inside `meshkp top`, and one
Ctrl-C closes the view and stops every node."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.top.model import LEADER_MARK
from tests.integration.conftest import REPO
from tests.integration.control_mesh import wait_until

pytestmark = pytest.mark.integration


def free_block(count: int, low: int, high: int) -> int:
    """A first port with `count` consecutive ports free for TCP and UDP (below the ephemeral range)."""
    rng = random.Random()
    for _ in range(500):
        first = rng.randrange(low, high - count)
        try:
            for port in range(first, first + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free block of ports")


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make apt)")
def test_dev_top_ctrl_c_stops_all(tmp_path: Path) -> None:
    http = free_block(3, 20000, 26000)
    gossip = free_block(6, 26000, 32000)  # node i: gossip + 2i, replication one above
    socket_path = str(tmp_path / "tmux.sock")

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", socket_path, *args], capture_output=True,
                              text=True, timeout=10)

    command = (f"{sys.executable} -m cli.main dev --top --root {tmp_path / 'dev'} "
               f"--first-http-port {http} --first-gossip-port {gossip}")
    assert tmux("new-session", "-d", "-s", "dev", "-x", "80", "-y", "24", "-c", str(REPO),
                command).returncode == 0
    try:
        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", "dev").stdout

        wait_until(lambda: "3 alive" in screen() and LEADER_MARK in screen(), 90,
                   "the dev mesh in top", screen)
        assert all(answers(http + i) for i in range(3))
        tmux("send-keys", "-t", "dev", "C-c")
        wait_until(lambda: not any(answers(http + i) for i in range(3)), 30,
                   "every dev node stopped after Ctrl-C", screen)
        wait_until(lambda: tmux("has-session", "-t", "dev").returncode != 0, 20,
                   "meshkp dev exits", screen)
    finally:
        tmux("kill-server")
