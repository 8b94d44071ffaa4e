"""`meshkp lb-config` against 3 real `meshkp serve --mesh` processes, and a real HAProxy
(Debian package haproxy) run with the generated config in front of them on loopback: the
config is valid, the requests spread over the 3 nodes, and a killed node is taken out with no
request failing. The agent check (drain, weights, read-only): tests/integration/test_lb_agent.py."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import REPO, ServerProcess, start_server
from tests.integration.test_membership import gossip_port, nodes_seen, wait_until
from tests.ports import free_port

pytestmark = pytest.mark.integration

N = 3
# HAProxy's check interval in the test: a dead node is out after 2 failed checks (~0.4 s).
CHECK_MS = 200
REQUESTS = 30


@contextlib.contextmanager
def lb_mesh(root: Path, *extra: Callable[[], Sequence[str]]) -> Iterator[dict[str, ServerProcess]]:
    """N real `meshkp serve --mesh` nodes n0..n2 on loopback, every HTTP address known to all.

    `extra`: functions giving more options per node (called once per node, e.g. a free port).
    """
    key_file = root / "cluster.key"
    write_key_file(key_file, [generate_key()], overwrite=False)
    ports = [gossip_port() for _ in range(N)]
    servers: dict[str, ServerProcess] = {}
    try:
        for i in range(N):
            more = [arg for option in extra for arg in option()]
            servers[f"n{i}"] = start_server(
                root / f"n{i}", "--mesh", "--node-id", f"n{i}", "--gossip-port", str(ports[i]),
                "--cluster-key-file", str(key_file), "--gossip-profile", "test",
                "--join", f"127.0.0.1:{ports[0]}", "--no-access-log", *more, timeout=60)
        names = set(servers)
        wait_until(lambda: all(nodes_seen(s) == dict.fromkeys(names, "alive")
                               for s in servers.values()), 30, "3 nodes alive everywhere",
                   lambda: {n: nodes_seen(s) for n, s in servers.items()})
        # With --http-port 0 a node first gossips port 0, then its real port.
        addresses = {name: s.url.removeprefix("http://") for name, s in servers.items()}
        wait_until(lambda: all(http_addresses(s) == addresses for s in servers.values()), 30,
                   "every node's HTTP address known everywhere",
                   lambda: {n: http_addresses(s) for n, s in servers.items()})
        yield servers
    finally:
        for server in servers.values():
            server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)
        for server in servers.values():
            server.assert_no_bugs()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    with lb_mesh(tmp_path_factory.mktemp("lb-mesh")) as servers:
        yield servers


def http_addresses(server: ServerProcess) -> dict[str, str]:
    """node id -> announced HKP address, as this server's /cluster/nodes says."""
    try:
        reply = server.request("GET", "/cluster/nodes", timeout=5)
    except OSError:
        return {}
    body = reply.json() if reply.status == 200 else {}
    assert isinstance(body, dict)
    return {n["id"]: n["http"] for n in body.get("nodes", [])}


def lb_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "lb-config", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def haproxy() -> str:
    found = shutil.which("haproxy")
    if found is None:
        pytest.skip("haproxy is not installed (Debian package haproxy: make apt)")
    return found


def served_by(port: int) -> str | None:
    """The node id that answered /pks/health through the balancer; None if the request failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/pks/health")
        reply = conn.getresponse()
        body = reply.read()
        return str(json.loads(body)["node_id"]) if reply.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None
    finally:
        conn.close()


def test_configs_name_every_member(mesh: dict[str, ServerProcess], tmp_path: Path) -> None:
    out = tmp_path / "haproxy.cfg"
    result = lb_config("haproxy", "--node", mesh["n1"].url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 node(s): n0, n1, n2" in result.stderr
    text = out.read_text()
    for name, server in mesh.items():
        assert f"    server {name} {server.url.removeprefix('http://')}\n" in text
    assert "option httpchk GET /cluster/health" in text
    # These nodes run no agent responder (no --agent-check-port): health checks only.
    assert "agent-check agent-port" not in text
    nginx = lb_config("nginx", "--node", mesh["n2"].url, "--bind", "127.0.0.1:8080")
    assert nginx.returncode == 0, nginx.stderr
    for server in mesh.values():
        assert f"    server {server.url.removeprefix('http://')} max_fails=2" in nginx.stdout
    assert "listen 127.0.0.1:8080;" in nginx.stdout


def test_a_node_without_a_mesh_is_a_backend_of_one(tmp_path: Path) -> None:
    server = start_server(tmp_path / "alone", "--no-access-log")
    try:
        result = lb_config("haproxy", "--node", server.url)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    servers = [line.split() for line in result.stdout.splitlines() if line.startswith("    server ")]
    assert len(servers) == 1 and servers[0][2] == server.url.removeprefix("http://")


def test_haproxy_spreads_requests_and_takes_a_killed_node_out(
        mesh: dict[str, ServerProcess], tmp_path: Path) -> None:
    binary = haproxy()
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    result = lb_config("haproxy", "--node", mesh["n0"].url, "--out", str(config),
                       "--bind", f"127.0.0.1:{port}", "--check-interval", str(CHECK_MS))
    assert result.returncode == 0, result.stderr
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115  (the child writes to it)
    proxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
    log.close()
    try:
        def answers() -> bool:
            assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
            return served_by(port) is not None

        wait_until(answers, 15, "HAProxy answers")
        spread = collections.Counter(served_by(port) for _ in range(REQUESTS))
        assert set(spread) == set(mesh), f"requests went to {dict(spread)}"

        victim = mesh["n2"]
        victim.proc.kill()
        victim.proc.wait(10)
        # Retries with redispatch cover the checks' detection time: no request fails.
        after = [served_by(port) for _ in range(REQUESTS)]
        assert None not in after, f"failed requests after the kill: {after}"
        assert "n2" not in after
        assert set(after) == {"n0", "n1"}
        # Taken out by the health check (fall 2), not only dodged by the retries.
        haproxy_log = tmp_path / "haproxy.log"
        wait_until(lambda: "Server meshkp/n2 is DOWN" in haproxy_log.read_text(), 10,
                   "HAProxy marks n2 down", haproxy_log.read_text)
        assert "Server meshkp/n0 is DOWN" not in haproxy_log.read_text()
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(10)
