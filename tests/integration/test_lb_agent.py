"""A real HAProxy (Debian package haproxy) with agent checks, in front of 3 real
`meshkp serve --mesh` processes on loopback, configured by `meshkp lb-config haproxy`:

- the requests spread over the 3 nodes, each weighted by its agent (`up ready NN%`);
- a node drained through PUT /cluster/routing stops receiving new requests at once (the agent
  says `drain`) while its /cluster/health still answers 200 during the grace period, and no
  request fails; after the grace, health answers 503 and the agent `maint`; lifting the drain
  brings it back;
- uploads to a read-only node are refused with the reason, through the balancer and directly;
- a killed node is taken out, and no request fails.

And every node's load and performance reach any node through the mesh; and each word of the
agent's line means to the real HAProxy what it is meant to (a `down` with its reason).
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web

from meshkp.control.policy.commands import SetRouting
from meshkp.http.agent_check import AgentCheckResponder
from meshkp.http.load import LoadSampler, LoopLagProbe
from meshkp.http.metrics import HttpMetrics
from meshkp.http.routing import RoutingGate
from tests.integration.conftest import FIXTURES, REPO, ServerProcess
from tests.integration.test_lb_config import haproxy, lb_mesh, served_by
from tests.integration.test_membership import wait_until
from tests.ports import free_port
from tests.unit.http.test_policy_auth_routing import applied

pytestmark = pytest.mark.integration

CHECK_MS = 200  # HAProxy's health- and agent-check interval
# Long enough that the drained node's health is still 200 when HAProxy has stopped sending it
# requests (an agent check, 0.2 s, plus the policy's commit), short for the test.
GRACE_S = 6.0
REQUESTS = 30


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    def agent() -> list[str]:
        return ["--control-profile", "local", "--agent-check-port", str(free_port()),
                "--drain-grace", str(GRACE_S)]

    with lb_mesh(tmp_path_factory.mktemp("lb-agent"), agent) as servers:
        wait_until(lambda: len({leader(s) for s in servers.values()}) == 1
                   and None not in {leader(s) for s in servers.values()}, 30, "one leader")
        yield servers


def leader(server: ServerProcess) -> str | None:
    try:
        reply = server.request("GET", "/cluster/leader", timeout=5)
    except OSError:
        return None
    body = reply.json() if reply.status == 200 else {}
    return body.get("leader") if isinstance(body, dict) else None


def agent_line(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        data = b""
        while chunk := conn.recv(256):
            data += chunk
    return data.decode()


def put_routing(server: ServerProcess, **fields: object) -> None:
    token = (server.data_dir / "admin.token").read_text().strip()
    reply = server.request("PUT", "/cluster/routing", body=json.dumps(fields).encode(),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"}, timeout=30)
    assert reply.status == 200, reply.text()


def health(server: ServerProcess) -> tuple[int, dict[str, object]]:
    reply = server.request("GET", "/cluster/health", timeout=5)
    body = reply.json()
    assert isinstance(body, dict)
    return reply.status, body


def upload(port: int, keytext: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/pks/add", body=b"keytext=" + quote(keytext, safe="").encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        conn.close()


def test_haproxy_follows_the_agents_drain_read_only_and_a_kill(
        mesh: dict[str, ServerProcess], tmp_path: Path) -> None:
    binary = haproxy()
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "lb-config", "haproxy", "--node", mesh["n0"].url,
         "--out", str(config), "--bind", f"127.0.0.1:{port}", "--check-interval", str(CHECK_MS)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    agent_ports = {name: int(s.extra_args[s.extra_args.index("--agent-check-port") + 1])
                   for name, s in mesh.items()}
    text = config.read_text()
    for name, agent in agent_ports.items():
        assert f"server {name} {mesh[name].url.removeprefix('http://')} agent-check " \
               f"agent-port {agent} agent-inter {CHECK_MS}ms" in text
    assert agent_line(agent_ports["n0"]).startswith("up ready ")
    log_path = tmp_path / "haproxy.log"
    log = open(log_path, "wb")  # noqa: SIM115  (the child writes to it)
    proxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=log)
    log.close()
    try:
        def answers() -> bool:
            assert proxy.poll() is None, log_path.read_text()
            return served_by(port) is not None

        wait_until(answers, 15, "HAProxy answers")
        spread = collections.Counter(served_by(port) for _ in range(REQUESTS))
        assert set(spread) == set(mesh), f"requests went to {dict(spread)}"

        # Drain n2: the agent says "drain" at once; health stays 200 for the grace period.
        drained_at = time.monotonic()
        put_routing(mesh["n2"], drain=True)
        assert agent_line(agent_ports["n2"]) == "up drain\n"
        during: list[str | None] = []

        def n2_left_rotation() -> bool:
            recent = [served_by(port) for _ in range(10)]
            during.extend(recent)
            return "n2" not in recent

        wait_until(n2_left_rotation, GRACE_S, "HAProxy stops sending new requests to n2")
        status, body = health(mesh["n2"])
        assert time.monotonic() - drained_at < GRACE_S, "the test was too slow to tell"
        assert status == 200 and body["draining"] is True, body  # the agent did it, not health
        after = [served_by(port) for _ in range(REQUESTS)]
        assert None not in during + after, f"requests failed while draining: {during + after}"
        assert set(after) == {"n0", "n1"}
        # Still serving clients that reach it directly.
        assert mesh["n2"].request("GET", "/pks/health", timeout=5).status == 200
        # Past the grace: health 503 (drained, safe to stop) and the agent "maint".
        wait_until(lambda: health(mesh["n2"])[0] == 503, GRACE_S + 5, "health 503 after grace")
        assert agent_line(agent_ports["n2"]) == "up maint\n"
        put_routing(mesh["n2"], drain=False)
        assert agent_line(agent_ports["n2"]).startswith("up ready ")
        wait_until(lambda: "n2" in {served_by(port) for _ in range(10)}, 10,
                   "n2 back in rotation", log_path.read_text)

        # Read-only n1: its uploads are refused with the reason, naming a writable node.
        put_routing(mesh["n1"], read_only=True)
        keytext = (FIXTURES / "alice_unsigned.asc").read_bytes()
        status, reason = upload(mesh["n1"].port, keytext)
        assert status == 503 and "read-only by the cluster routing policy" in reason, reason
        assert "upload to n" in reason and "instead" in reason
        outcomes = [upload(port, keytext) for _ in range(12)]
        refused = [r for s, r in outcomes if s == 503]
        assert all(s in (200, 503) for s, _ in outcomes), outcomes
        assert refused and all("read-only" in r for r in refused), outcomes
        assert any(s == 200 for s, _ in outcomes), outcomes
        put_routing(mesh["n1"], read_only=False)

        # kill -9 of n0: taken out by its failed checks; retries hide it from clients.
        mesh["n0"].proc.kill()
        mesh["n0"].proc.wait(10)
        killed = [served_by(port) for _ in range(REQUESTS)]
        assert None not in killed, f"failed requests after the kill: {killed}"
        assert set(killed) == {"n1", "n2"}
        wait_until(lambda: "Server meshkp/n0 is DOWN" in log_path.read_text(), 10,
                   "HAProxy marks n0 down", log_path.read_text)
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(10)


def cluster_view(server: ServerProcess, path: str) -> dict[str, object]:
    reply = server.request("GET", path, timeout=5)
    assert reply.status == 200, reply.text()
    body = reply.json()
    assert isinstance(body, dict)
    return body


def test_every_node_load_and_performance_reach_any_node_through_the_mesh(
        mesh: dict[str, ServerProcess]) -> None:
    # Only n1 and n2 are used: the balancer test above may have killed n0.
    asker, busy = mesh["n1"], mesh["n2"]
    for _ in range(40):
        busy.lookup(op="get", search="0x0123456789ABCDEF")
    put_routing(asker, weight=100)  # one policy change proposed on n1: a commit latency sample
    keytext = (FIXTURES / "test-key.asc").read_bytes()
    assert busy.add(keytext).status == 200  # pushed to n1: a replicated-write latency sample

    def seen() -> dict[str, object]:
        return cluster_view(asker, "/cluster/load")

    def busy_seen() -> bool:
        load = seen()["nodes"]["n2"]["load"]  # type: ignore[index]
        return bool(load and load["requests"].get("get", {}).get("rate", 0) > 0)

    wait_until(busy_seen, 15, "n1 sees n2's lookups in /cluster/load", seen)
    view = seen()
    nodes = view["nodes"]
    assert isinstance(nodes, dict)
    entry = nodes["n2"]
    assert entry["status"] == "alive" and entry["self"] is False and entry["stale"] is False
    assert 0 <= entry["age_s"] <= view["stale_after_s"]
    load = entry["load"]
    assert {"cpu", "loop_lag_ms", "connections", "headroom", "agent_percent", "client"} <= set(load)
    assert load["requests"]["get"]["p99_ms"] is not None
    # n1's own round trip to n2, and n2's word that it reached n1 in its last exchange.
    assert entry["rtt_ms"] is not None and entry["last_contact_s"] is not None
    assert "n1" in load["reach"]
    assert nodes["n1"]["self"] is True
    for name, other in nodes.items():
        if other["status"] == "alive":
            assert other["load"] and other["load"]["window_s"] > 0, (name, other)

    def performance() -> dict[str, object]:
        return cluster_view(asker, "/cluster/performance")

    def measured() -> bool:
        figures = performance()["figures"]
        return (figures["replicated_write_latency"]["nodes"].get("n1", {}).get("samples", 0) > 0
                and figures["consensus_commit_latency"]["nodes"]["n1"]["samples"] > 0
                and figures["local_read_latency"]["nodes"]["n2"]["samples"] >= 40)

    wait_until(measured, 15, "n1's performance figures measured", performance)
    figures = performance()["figures"]
    assert figures["replicated_write_latency"]["target_ms"] == 100.0
    assert figures["local_read_latency"]["target_ms"] == 10.0
    assert figures["consensus_commit_latency"]["target_ms"] == 50.0
    assert set(figures) == {"replicated_write_latency", "local_read_latency", "sync_lag",
                            "consensus_commit_latency"}
    for figure in figures.values():
        for node_figure in figure["nodes"].values():
            value, meets = node_figure["value_ms"], node_figure["meets"]
            assert meets is None if value is None else meets == (value < figure["target_ms"])


async def test_haproxy_reads_each_agent_answer_as_meant(tmp_path: Path) -> None:
    """Each word of the agent's line as the real HAProxy takes it: down with its reason (a
    `#word` to the end of the line), drain, maint, and ready with a weight."""
    binary = haproxy()
    policy = [applied(SetRouting("n1", weight=40))]
    healthy = [False]
    gate = RoutingGate("n1", lambda: policy[0], drain_grace_s=3600)
    responder = AgentCheckResponder("127.0.0.1", 0, gate,
                                    LoadSampler("n1", HttpMetrics(), LoopLagProbe(), lambda: 0),
                                    lambda: healthy[0])
    agent_port = await responder.start()
    app = web.Application()
    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="{}")

    app.router.add_get("/cluster/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", free_port())
    await site.start()
    http_port = runner.addresses[0][1]
    stats = tmp_path / "stats.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"global\n    stats socket {stats} level admin\ndefaults\n    mode http\n"
        "    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
        f"backend meshkp\n    option httpchk GET /cluster/health\n"
        f"    default-server check inter {CHECK_MS}ms fall 2 rise 2 weight 100\n"
        f"    server n1 127.0.0.1:{http_port} agent-check agent-port {agent_port} "
        f"agent-inter {CHECK_MS}ms\n")
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "wb") as out:
        proxy = await asyncio.create_subprocess_exec(binary, "-db", "-f", str(config),
                                                     stdout=out, stderr=out)

    async def server_state() -> str:
        reader, writer = await asyncio.open_unix_connection(str(stats))
        writer.write(b"show servers state meshkp\n")
        data = await reader.read()
        writer.close()
        return data.decode()

    async def until(what: str, predicate) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await predicate():
            assert proxy.returncode is None, log_path.read_text()
            assert loop.time() < deadline, f"{what}: {log_path.read_text()}"
            await asyncio.sleep(0.1)

    async def logged(text: str) -> bool:
        return text in log_path.read_text()

    try:
        await until("down with its reason", lambda: logged(
            'via agent : down (no majority of the mesh is alive here)'))
        healthy[0] = True
        await until("up again", lambda: logged("Server meshkp/n1 is UP"))

        async def weight_is(weight: str) -> bool:
            # "show servers state": ... srv_op_state srv_admin_state srv_uweight srv_iweight ...
            rows = [line.split() for line in (await server_state()).splitlines()
                    if " n1 " in line]
            return bool(rows) and rows[0][7] == weight

        await until("weight 40% of 100", lambda: weight_is("40"))
        policy[0] = applied(SetRouting("n1", weight=40), SetRouting("n1", drain=True))
        await until("drain", lambda: logged("Server meshkp/n1 enters drain state"))
        gate.drain_grace_s = 0
        await until("maint", lambda: logged("Server meshkp/n1 is going DOWN for maintenance"))
        policy[0] = applied(SetRouting("n1", weight=40))
        await until("ready again", lambda: weight_is("40"))
    finally:
        proxy.terminate()
        await proxy.wait()
        await responder.stop()
        await runner.cleanup()
