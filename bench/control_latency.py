"""Policy commit latency and leader failover on 5 real nodes: `python -m bench.control_latency`.

Five `meshkp serve --mesh` processes on loopback (`--control-profile local`, `--gossip-profile
test`). Latency: a client sends PUT /cluster/policy (a SetLimits) and times until the answer,
which the node gives once the change is applied on it, over >= 200 changes sent to the leader
and as many sent to a follower (which forwards to the leader). Each is set against one HTTP
round trip of a bare aiohttp handler (bench/bare_server.py) timed in the same run over the
same kind of keep-alive connection. Failover: from kill -9 of the leader to the first PUT
that succeeds on a survivor (retried at once on 503), median of several runs; the killed node
is restarted between runs. Idle traffic: control-plane bytes all 5 nodes send per second
over 10 s without changes (heartbeats of the `local` profile, every 50 ms). For the
breakdown, the same changes on a one-node control plane (no replication: HTTP, the fsync'ed
append, the apply) and one 4 KB write + fdatasync in the same file system.
"""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from bench.common import free_port, report, stop_process, wait_http
from bench.upload_sequential import fsync_seconds
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.control_mesh import ControlMesh, wait_until


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Client:
    """One keep-alive connection to a node."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def timed(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, float]:
        began = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers or {})
        reply = self.conn.getresponse()
        reply.read()
        return reply.status, time.perf_counter() - began


def _bare_rtt(count: int) -> list[float]:
    port = free_port()
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        body.write(b'{"applied": true}\n')
        body.flush()
        proc = subprocess.Popen([sys.executable, "-m", "bench.bare_server", "--port", str(port),
                                 "--body", body.name, "--content-type", "application/json"])
        try:
            wait_http(f"http://127.0.0.1:{port}/", 20)
            client = _Client(f"http://127.0.0.1:{port}")
            return [client.timed("GET", "/x")[1] for _ in range(count)]
        finally:
            stop_process(proc)


def _changes(mesh: ControlMesh, node: str, count: int, start: int) -> list[float]:
    return _timed_changes(mesh.servers[node], count, start)


def _solo_changes(root: Path, count: int) -> list[float]:
    """The same changes on a one-node control plane (`serve` without a mesh): HTTP, validation,
    the fsync'ed append and the apply, with no replication; the floor of one commit here."""
    server = start_server(root / "solo", "--no-access-log")
    try:
        return _timed_changes(server, count, 0)
    finally:
        server.stop()


def _timed_changes(server: ServerProcess, count: int, start: int) -> list[float]:
    token = (server.data_dir / "admin.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client = _Client(server.url)
    times = []
    for i in range(count):
        body = json.dumps({"limits": {"search_results": 100 + (start + i) % 500}}).encode()
        status, took = client.timed("PUT", "/cluster/policy", body, headers)
        if status != 200:
            raise RuntimeError(f"PUT /cluster/policy on {server.url} answered {status}")
        times.append(took)
    return times


def _idle_bytes_per_s(mesh: ControlMesh, seconds: float) -> float:
    """Control-plane bytes all nodes put on the wire per second while nothing changes."""
    def total() -> int:
        return sum(int((mesh.get(n, "/cluster/consensus").get("net") or {}).get("bytes_sent", {})
                       .get("tcp", 0)) for n in mesh.running())

    before, began = total(), time.perf_counter()
    time.sleep(seconds)
    return (total() - before) / (time.perf_counter() - began)


def _failover(mesh: ControlMesh, value: int) -> float:
    leader = mesh.agreed_leader()
    assert leader is not None
    survivor = sorted(n for n in mesh.running() if n != leader)[0]
    index = int(leader.removeprefix("n"))
    killed_at = time.perf_counter()
    mesh.servers[leader].proc.send_signal(signal.SIGKILL)
    mesh.servers[leader].proc.wait(10)
    while True:
        reply = mesh.put_policy(survivor, {"search_results": value}, timeout=30)
        if reply.status == 200:
            took = time.perf_counter() - killed_at
            break
        if time.perf_counter() - killed_at > 60:
            raise RuntimeError("no commit within 60 s of the leader's kill")
    mesh.start(index)  # back from its own data dir, as a member
    wait_until(lambda: mesh.agreed_leader() is not None and len(mesh.leaders()) == mesh.size, 30,
               "agreement after restart", mesh.leaders)
    return took


def run(changes: int = 200, failovers: int = 5) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="meshkp-bench-control-") as tmp:
        mesh = ControlMesh(Path(tmp))
        try:
            leader = mesh.form()
            follower = sorted(n for n in mesh.running() if n != leader)[0]
            idle = _idle_bytes_per_s(mesh, 10.0)
            bare = _bare_rtt(max(changes, 200))
            to_leader = _changes(mesh, leader, changes, 0)
            to_follower = _changes(mesh, follower, changes, changes)
            failover = [_failover(mesh, 700 + i) for i in range(failovers)]
        finally:
            mesh.close()
        solo = _solo_changes(Path(tmp), changes)
        fsync = fsync_seconds(Path(tmp))
    rtt = statistics.median(bare)
    rows = []
    data: dict[str, object] = {"changes": changes, "bare_rtt_p50_ms": rtt * 1e3,
                               "idle_bytes_per_s": idle,
                               "failover_s": failover, "failover_median_s": statistics.median(failover)}
    data["fsync_ms"] = fsync * 1e3
    for name, times in (("to the leader", to_leader), ("to a follower", to_follower),
                        ("to a one-node cluster", solo)):
        p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
        rows.append((f"policy change {name}", f"{p50 * 1e3:.2f}", f"{p99 * 1e3:.2f}",
                     f"{p50 / rtt:.1f}", f"{p99 / rtt:.1f}"))
        data[name.replace(" ", "_")] = {"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3,
                                        "p50_vs_bare": p50 / rtt, "p99_vs_bare": p99 / rtt}
    rows.append(("bare aiohttp round trip", f"{rtt * 1e3:.2f}", f"{_percentile(bare, 0.99) * 1e3:.2f}",
                 "1.0", f"{_percentile(bare, 0.99) / rtt:.1f}"))
    rows.append(("4 KB write + fdatasync in the data dir", f"{fsync * 1e3:.2f}", "", "", ""))
    rows.append((f"failover, kill -9 -> commit (median of {failovers})",
                 f"{statistics.median(failover) * 1e3:.0f}", f"{max(failover) * 1e3:.0f} (max)", "", ""))
    rows.append(("idle control traffic, whole cluster (bytes/s)", f"{idle:.0f}", "", "", ""))
    report("control_latency", "Policy commit latency, 5 nodes on loopback (ms)",
           ("what", "p50 ms", "p99 ms", "p50 / bare RTT", "p99 / bare RTT"), rows, data)
    return data


@click.command()
@click.option("--changes", type=int, default=200, show_default=True, help="Changes per target.")
@click.option("--failovers", type=int, default=5, show_default=True, help="kill -9 runs.")
def main(changes: int, failovers: int) -> None:
    """Measure policy commit latency (leader, follower) and failover time."""
    run(changes, failovers)


if __name__ == "__main__":
    main()
