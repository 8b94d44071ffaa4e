"""Replicated-write latency at the client: POST /pks/add with x-consistency one, quorum and all.

For each mesh size, a fresh mesh of real `meshkp serve` processes on loopback (every node a
--replication-peer of every other); writes of distinct generated keys go to random nodes one
after another, each level in turn (one, quorum, all, one, ...), so the three levels share the
machine's load, with a pause between writes (--gap) so that a write does not queue behind
the previous one's pushes (one push batch is in flight per peer); the figure is the client's
time from sending the request to the full reply.
`one` is the baseline measured in the same run (durable on the accepting node only).

    python -m bench.replication_write_latency --nodes 3,5,10 --writes 100
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import click

from bench.common import report
from tests.integration.replication_mesh import Mesh, armored

LEVELS = ("one", "quorum", "all")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_mesh(nodes: int, writes: int, seed: int, gap: float) -> dict[str, list[float]]:
    """Client latencies (s) per level on a fresh mesh of `nodes`."""
    root = Path(tempfile.mkdtemp(prefix="wlat-bench-"))
    mesh = Mesh.start(root, nodes, "--sync-interval", "10")
    rng = random.Random(seed)
    times: dict[str, list[float]] = {level: [] for level in LEVELS}
    failures: dict[str, int] = {}
    try:
        for i in range(writes * len(LEVELS)):
            level = LEVELS[i % len(LEVELS)]
            target = mesh[rng.randrange(nodes)]
            body = armored(20_000 + seed * 100_000 + i, seed=b"wlat")
            began = time.perf_counter()
            reply = target.add(body, headers={"X-Consistency": level})
            elapsed = time.perf_counter() - began
            if reply.status != 200:  # a 503: short of acks within consistency_timeout (5 s)
                failures[level] = failures.get(level, 0) + 1
            times[level].append(elapsed)
            time.sleep(gap)
    finally:
        mesh.close()
    if failures:
        print(f"nodes={nodes}: answered 503 (acks short): {failures}")
    return times


@click.command()
@click.option("--nodes", "sizes", default="3,5,10", show_default=True)
@click.option("--writes", default=100, show_default=True, help="Writes per level and mesh.")
@click.option("--gap", default=0.1, show_default=True, help="Seconds between writes.")
def main(sizes: str, writes: int, gap: float) -> None:
    """Client latency of one/quorum/all writes on meshes of each size."""
    run([int(n) for n in sizes.split(",")], writes, gap)


def run(sizes: list[int] | None = None, writes: int = 100, gap: float = 0.1) -> None:
    """The benchmark (bench.run_all calls it with small sizes for --quick)."""
    rows = []
    data: dict[str, object] = {"writes": writes, "gap_s": gap, "load_average": os.getloadavg()[0]}
    for nodes in sizes or [3, 5, 10]:
        times = one_mesh(nodes, writes, nodes, gap)
        row: list[object] = [str(nodes)]
        for level in LEVELS:
            p50, p99 = statistics.median(times[level]), _p(times[level], 0.99)
            row += [f"{p50 * 1000:.1f}", f"{p99 * 1000:.1f}"]
            data[f"{nodes}_{level}"] = {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000,
                                        "max_ms": max(times[level]) * 1000}
        rows.append(row)
        print(f"nodes={nodes}: " + ", ".join(
            f"{level} p50 {statistics.median(times[level]) * 1000:.1f} ms p99 "
            f"{_p(times[level], 0.99) * 1000:.1f} ms" for level in LEVELS), flush=True)
        time.sleep(1)
    report("replication_write_latency", f"Client latency of a write ({writes} per level)",
           ["nodes", "one p50 ms", "one p99 ms", "quorum p50 ms", "quorum p99 ms",
            "all p50 ms", "all p99 ms"], rows, data)


if __name__ == "__main__":
    main()
