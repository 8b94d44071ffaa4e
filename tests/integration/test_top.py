"""`meshkp top` against 3 real `meshkp serve --mesh` processes: `--once` shows every node, the
leader mark and a sparkline; under tmux (80x24) the live view shows the same, the topology (all
three see each other), a drained node's flag and event, the sort key and a node's detail panel
(its round trip and sync lag), and when the node it talks to is killed it fails over to another
member and shows the dead one go suspect, then dead, in its row and in the events."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.top.collect import Collector
from cli.top.model import LEADER_MARK, SPARK_BLOCKS
from tests.integration.conftest import REPO, meshkp_cli
from tests.integration.control_mesh import ControlMesh, wait_until
from tests.integration.test_membership import detection_bound

pytestmark = pytest.mark.integration

N = 3
NODES = [f"n{i}" for i in range(N)]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[ControlMesh]:
    m = ControlMesh(tmp_path, size=N)
    try:
        for i in range(N):
            m.start(i)
        wait_until(lambda: m.agreed_leader() is not None, 60, "one leader", m.leaders)
        yield m
    finally:
        m.close()
    for server in m.servers.values():
        server.assert_no_bugs()


def has_sparkline(text: str) -> bool:
    return any(block in text for block in SPARK_BLOCKS)


def test_top_once_and_failover(mesh: ControlMesh) -> None:
    n1 = mesh.servers["n1"]
    for _ in range(10):  # some client traffic for the rates
        n1.lookup(op="stats", options="mr")
    # A sparkline needs a load summary of each node, and the first exchange may come after the
    # leader (elections are quicker than one load interval).
    def summaries() -> list[object]:
        nodes = mesh.get("n1", "/cluster/load").get("nodes", {})
        return [entry.get("load") for entry in nodes.values() if entry.get("load")]

    wait_until(lambda: len(summaries()) == N, 30, "every node's load summary at n1", summaries)
    result = meshkp_cli("top", "--once", "--node", n1.url, "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    leader = mesh.agreed_leader()
    assert f"{LEADER_MARK}{leader}" in result.stdout, result.stdout
    for node in NODES:
        assert node in result.stdout
    assert has_sparkline(result.stdout) and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 80

    collector = Collector(n1.url)
    try:
        first = collector.poll()
        assert first.source == n1.url and all(m.reachable for m in first.members)
        n1.proc.kill()
        n1.proc.wait(10)
        after = collector.poll()
        assert after.source != n1.url and not after.error, after.error
        by_id = {m.id: m for m in after.members}
        assert not by_id["n1"].reachable and by_id["n0"].reachable and by_id["n2"].reachable
    finally:
        collector.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make apt)")
def test_top_live_under_tmux(mesh: ControlMesh, tmp_path: Path) -> None:
    socket = str(tmp_path / "tmux.sock")
    target = mesh.servers["n1"]

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    command = f"{sys.executable} -m cli.main top --node {target.url} --interval 0.5"
    tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "-c", str(REPO), command)
    try:
        def screen() -> str:
            return tmux("capture-pane", "-p", "-t", "top")

        leader = mesh.agreed_leader()
        wait_until(lambda: f"{LEADER_MARK}{leader}" in screen() and has_sparkline(screen())
                   and all(node in screen() for node in NODES), 30,
                   "every node, the leader mark and a sparkline on screen", screen)
        assert "p99 ms" in screen() and "rtt" in screen()
        # Each node's reach arrives with its load summary: the picture of who sees whom.
        wait_until(lambda: "all see each other" in screen(), 30, "the topology line", screen)
        lines = screen().splitlines()
        assert len(lines) <= 24 and max(map(len, lines)) <= 80

        def row_of(node: str) -> str:
            found = [line for line in screen().splitlines()
                     if line.startswith((f" {node} ", f"{LEADER_MARK}{node} ", f"  {node} ",
                                         f" {LEADER_MARK}{node} "))]
            return found[0] if found else ""

        n2 = mesh.servers["n2"]
        token = (n2.data_dir / "admin.token").read_text().strip()
        reply = n2.request("PUT", "/cluster/routing", body=json.dumps({"drain": True}).encode(),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})
        assert reply.status == 200, reply.text()
        wait_until(lambda: row_of("n2").rstrip().endswith("D") and "n2 draining" in screen(),
                   15, "n2's drain flag and event", screen)
        tmux("send-keys", "-t", "top", "s")
        wait_until(lambda: "sort (status)" in screen(), 5, "the sort key", screen)
        tmux("send-keys", "-t", "top", "Enter")
        wait_until(lambda: "last contact" in screen() and "sync lag" in screen(), 5,
                   "the detail panel", screen)
        tmux("send-keys", "-t", "top", "Escape")
        wait_until(lambda: "last contact" not in screen(), 5, "the detail panel closes", screen)
        target.proc.kill()  # the node top talks to: it must fail over and show n1 going away
        target.proc.wait(10)

        def n1_status() -> str:
            row = [line for line in screen().splitlines() if " n1 " in line or "★n1 " in line]
            return row[0] if row else ""

        wait_until(lambda: "suspect" in n1_status() or "dead" in n1_status(), 20,
                   "n1 suspect or dead on screen", screen)
        wait_until(lambda: "dead" in n1_status(), detection_bound(N), "n1 dead on screen", screen)
        assert "failed over from" in screen()
        wait_until(lambda: "n1 alive → suspect" in screen() or "n1 alive → dead" in screen()
                   or "n1 suspect → dead" in screen(), 5, "n1's change in the events", screen)
        tmux("send-keys", "-t", "top", "q")
        wait_until(lambda: subprocess.run(["tmux", "-S", socket, "has-session", "-t", "top"],
                                          capture_output=True).returncode != 0, 10,
                   "top quits on q", screen)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, timeout=10)
