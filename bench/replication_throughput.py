"""What replication costs the write path: POST /pks/add keys/s of one node with 0, 4 and 9 peers.

For each peer count a fresh mesh of real `meshkp serve` processes on loopback is started
(every node a static replication peer of every other, as in tests/integration); the first node
takes the writes. The same number of client threads (each with a keep-alive connection) post
distinct generated keys, one key per request, for a bounded count and time; the figure is the
acknowledged writes per second. Afterwards the time until every peer's merkle_root equals the
writer's is measured too ("drain": replication kept up, or how far behind it was).

All processes share this machine's cores, so with peers the writer also competes with them for
CPU: the drop shows the whole cost of replication on one host, not only the writer's pushes.

    python -m bench.replication_throughput --peers 0,4,9 --keys 1500 --clients 8
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from bench.common import report
from bench.keygen import generate_key
from meshkp.openpgp.armor import armor
from tests.integration.replication_mesh import Mesh, wait_until

# Seconds the timed phase of one configuration may last (the key count usually ends it).
MAX_PHASE_S = 90.0
# Seconds to wait for the peers to reach the writer's root after the timed phase.
MAX_DRAIN_S = 120.0


def bodies(count: int, seed: bytes) -> list[bytes]:
    """Form bodies of `count` distinct armored keys (one per request)."""
    return [b"keytext=" + quote(armor(generate_key(i, seed=seed).data), safe="").encode()
            for i in range(count)]


def post_all(host: str, port: int, work: list[bytes], clients: int) -> tuple[int, int, float]:
    """POST every body with `clients` threads; (accepted, failed, seconds)."""
    lock = threading.Lock()
    position = 0
    accepted = failed = 0
    deadline = time.monotonic() + MAX_PHASE_S

    def client() -> None:
        nonlocal position, accepted, failed
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if position >= len(work):
                        return
                    body = work[position]
                    position += 1
                conn.request("POST", "/pks/add", body=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                reply = conn.getresponse()
                reply.read()
                with lock:
                    if reply.status == 200:
                        accepted += 1
                    else:
                        failed += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(MAX_PHASE_S + 60)
    return accepted, failed, time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_config(peers: int, count: int, clients: int, fanout: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"repl-tput-{peers}-"))
    work = bodies(count, seed=f"tput-{peers}".encode())
    mesh = Mesh.start(root, peers + 1, "--sync-interval", "10", "--fanout", str(fanout))
    try:
        writer = mesh[0]
        load0 = os.getloadavg()[0]
        pids = [n.proc.pid for n in mesh.live()]
        cpu0 = [cpu_seconds(pid) for pid in pids]
        accepted, failed, seconds = post_all(writer.host, writer.port, work, clients)
        cpu1 = [cpu_seconds(pid) for pid in pids]
        began = time.monotonic()
        drain = None
        if peers:
            want = mesh.status(writer)["merkle_root"]
            drain = wait_until(lambda: all(mesh.status(n)["merkle_root"] == want for n in mesh.live()),
                               MAX_DRAIN_S, "every peer to reach the writer's root", step=0.2)
        cpu2 = [cpu_seconds(pid) for pid in pids]
        status = mesh.status(writer)
        return {
            "peers": peers, "keys": count, "accepted": accepted, "failed": failed,
            "seconds": seconds, "keys_per_s": accepted / seconds,
            "drain_s": drain if drain is not None else 0.0,
            "drain_total_s": time.monotonic() - began,
            "bytes_out": status["counters"].get("bytes_out"),
            "push_failures": status["counters"].get("push_failures"),
            "load_avg_1m": load0,
            # CPU per accepted write: the writer's during the timed phase, and every node's
            # until the peers had caught up (the whole cost of one write on this host).
            "writer_cpu_ms_per_key": (cpu1[0] - cpu0[0]) * 1000 / max(1, accepted),
            "all_cpu_ms_per_key": (sum(cpu2) - sum(cpu0)) * 1000 / max(1, accepted),
        }
    finally:
        mesh.close()
        shutil.rmtree(root, ignore_errors=True)


@click.command()
@click.option("--peers", "peer_counts", default="0,4,9", show_default=True)
@click.option("--keys", "count", default=1500, show_default=True, help="Writes per configuration.")
@click.option("--clients", default=8, show_default=True, help="Concurrent client connections.")
@click.option("--fanout", default=3, show_default=True,
              help="Peers each node forwards a change new to it to (meshkp serve --fanout).")
def main(peer_counts: str, count: int, clients: int, fanout: int) -> None:
    """Write throughput of one node with each number of peers attached."""
    run(peer_counts, count, clients, fanout)


def run(peer_counts: str = "0,4,9", count: int = 1500, clients: int = 8, fanout: int = 3) -> None:
    """The benchmark (bench.run_all calls it with small sizes for --quick)."""
    results = []
    for peers in (int(p) for p in peer_counts.split(",")):
        result = one_config(peers, count, clients, fanout)
        results.append(result)
        print(f"peers={peers} {result['keys_per_s']:.0f} keys/s ({result['accepted']} in "
              f"{result['seconds']:.1f} s, {result['failed']} failed), peers caught up "
              f"{result['drain_s']:.1f} s after the last write", flush=True)
    base = results[0]["keys_per_s"]
    rows = [[r["peers"], f"{r['keys_per_s']:.0f}", f"{r['keys_per_s'] / base:.2f}",
             f"{r['writer_cpu_ms_per_key']:.2f}", f"{r['all_cpu_ms_per_key']:.2f}",
             f"{r['drain_s']:.1f}", f"{r['bytes_out'] or 0:,}", f"{r['load_avg_1m']:.1f}"]
            for r in results]
    report("replication_throughput",
           f"POST /pks/add throughput of one node by peers attached ({count} keys, {clients} "
           f"clients, fanout {fanout})",
           ["peers", "keys/s", "vs 0 peers", "writer CPU ms/key", "all nodes CPU ms/key",
            "peers caught up after (s)", "bytes pushed", "load avg"],
           rows, {"clients": clients, "keys": count, "fanout": fanout, "results": results})


if __name__ == "__main__":
    main()
