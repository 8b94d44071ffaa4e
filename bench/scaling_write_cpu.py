"""Per-node CPU of one write as the mesh grows, and write throughput of 3 vs 6 nodes (issue 11).

Real `meshkp serve` processes on loopback (tests/integration/replication_mesh.py: static
replication peers, default push settings). The CPU of a node is utime + stime of its process
and its worker processes (/proc), so it holds everything a write costs there: HTTP, parse,
commit, push, or receive, merge, commit, ack.

1. cost: for each N, `--writes` uploads one at a time to node 0, then a wait until every
   node serves the last one; each node's CPU over that window, less its idle CPU over an
   equal window measured just before (anti-entropy rounds, load exchange), divided by the
   writes: the origin's cost c_o and each receiver's c_r, in ms of CPU per write.
2. throughput (`--throughput`): `--clients` concurrent clients upload `--tp-writes` keys
   round-robin over the nodes of a 3-node and a 6-node mesh, interleaved, `--runs` times;
   the model (docs/benchmarks.md "Scaling model") predicts the ratio from step 1's costs.

    python -m bench.scaling_write_cpu --nodes 3,6,10 --writes 200 --runs 3 --throughput
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

import click

from bench.common import OUT_DIR
from tests.integration.replication_mesh import Mesh, armored, fingerprint

_TICK = os.sysconf("SC_CLK_TCK")
_keys = count(100_000)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (a node and its worker processes)."""
    total = 0.0
    for each in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
        if each != pid:
            total += sum(cpu_seconds(grandchild) for grandchild in _children(each))
    return total


def _cpus(mesh: Mesh) -> list[float]:
    return [cpu_seconds(node.proc.pid) for node in mesh.live()]


def _wait_served(mesh: Mesh, fpr: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for node in mesh.live():
        while not mesh.has_key(node, fpr):
            if time.monotonic() > deadline:
                raise SystemExit(f"{fpr} not served everywhere after {timeout} s")
            time.sleep(0.01)


def cost_run(mesh: Mesh, writes: int) -> tuple[float, list[float]]:
    """(origin ms of CPU per write, receivers' ms per write) of `writes` uploads to node 0."""
    keys = [next(_keys) for _ in range(writes)]
    texts = [armored(k, seed=b"scale") for k in keys]  # generated before the window
    idle_before = _cpus(mesh)
    time.sleep(2.0)
    idle = [(b - a) / 2.0 for a, b in zip(idle_before, _cpus(mesh), strict=True)]
    before = _cpus(mesh)
    began = time.monotonic()
    for text in texts:
        reply = mesh[0].add(text)
        assert reply.status == 200, reply.text
    _wait_served(mesh, fingerprint(keys[-1], seed=b"scale"))
    elapsed = time.monotonic() - began
    used = [b - a - rate * elapsed for a, b, rate in zip(before, _cpus(mesh), idle, strict=True)]
    per_write = [1000 * u / writes for u in used]
    return per_write[0], per_write[1:]


def throughput_run(mesh: Mesh, writes: int, clients: int) -> float:
    """Keys per second of `writes` uploads from `clients` threads, round-robin over nodes."""
    keys = [next(_keys) for _ in range(writes)]
    texts = [armored(k, seed=b"scale") for k in keys]
    nodes = mesh.live()

    def upload(i: int) -> None:
        reply = nodes[i % len(nodes)].add(texts[i])
        assert reply.status == 200, reply.text

    began = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(upload, range(writes)))
    for k in keys[-clients:]:
        _wait_served(mesh, fingerprint(k, seed=b"scale"))
    return writes / (time.monotonic() - began)


def _start(root: Path, n: int) -> Mesh:
    mesh = Mesh.start(root / f"mesh{n}-{time.monotonic_ns()}", n, "--sync-interval", "10")
    warm = next(_keys)
    mesh[0].add(armored(warm, seed=b"scale"))
    _wait_served(mesh, fingerprint(warm, seed=b"scale"))
    return mesh


@click.command()
@click.option("--nodes", default="3,6,10", show_default=True)
@click.option("--writes", default=200, show_default=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--throughput/--no-throughput", default=True, show_default=True)
@click.option("--tp-writes", default=300, show_default=True)
@click.option("--clients", default=8, show_default=True)
def main(nodes: str, writes: int, runs: int, throughput: bool, tp_writes: int,
         clients: int) -> None:
    """Per-node CPU of a write at each mesh size; 3- vs 6-node write throughput."""
    run(nodes, writes, runs, throughput, tp_writes, clients)


def run(nodes: str = "3,5", writes: int = 30, runs: int = 1, throughput: bool = False,
        tp_writes: int = 100, clients: int = 8) -> None:
    """The benchmark (bench.run_all --quick calls it with these small sizes)."""
    root = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    out: dict[str, Any] = {"cost": {}, "throughput": {}, "load": os.getloadavg()}
    for n in (int(x) for x in nodes.split(",")):
        mesh = _start(root, n)
        try:
            samples = [cost_run(mesh, writes) for _ in range(runs)]
        finally:
            mesh.close()
        origin = statistics.median(s[0] for s in samples)
        receiver = statistics.median(statistics.median(s[1]) for s in samples)
        total = statistics.median(s[0] + sum(s[1]) for s in samples)
        out["cost"][n] = {"origin_ms": origin, "receiver_ms": receiver, "cluster_ms": total}
        print(f"nodes={n:2d} origin={origin:6.2f} ms receiver={receiver:6.2f} ms "
              f"cluster={total:6.2f} ms of CPU per write (median of {runs})", flush=True)
    if throughput:
        meshes = {n: _start(root, n) for n in (3, 6)}
        try:
            rates: dict[int, list[float]] = {3: [], 6: []}
            for _ in range(runs):
                for n, mesh in meshes.items():
                    rates[n].append(throughput_run(mesh, tp_writes, clients))
        finally:
            for mesh in meshes.values():
                mesh.close()
        for n, values in rates.items():
            out["throughput"][n] = statistics.median(values)
            print(f"nodes={n} write throughput {statistics.median(values):6.1f} keys/s "
                  f"(runs {', '.join(f'{v:.1f}' for v in values)})")
        print(f"6-node / 3-node write throughput: {out['throughput'][6] / out['throughput'][3]:.2f}")
    out["load_after"] = os.getloadavg()
    print(f"load average before {out['load']}, after {out['load_after']}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "scaling_write_cpu.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
