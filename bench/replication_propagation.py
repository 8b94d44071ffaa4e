"""Propagation in a mesh of real `meshkp serve` processes on loopback (issue 5 figure).

For each write: POST /pks/add to a random node, then poll every node with op=get (one thread
per node, 5 ms apart) until all serve the key; the figure is the time from the add reply to
the last node serving it. Reports p50/p99 over the writes (target p99 < 1 s).

    python -m bench.replication_propagation --nodes 10 --writes 200
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from bench.common import OUT_DIR
from tests.integration.replication_mesh import Mesh, armored, fingerprint


def _served_after(node, fpr: str, since: float, deadline: float) -> float:
    while time.monotonic() < deadline:
        if node.lookup(op="get", search="0x" + fpr).status == 200:
            return time.monotonic() - since
        time.sleep(0.005)
    return float("inf")


@click.command()
@click.option("--nodes", default=10, show_default=True)
@click.option("--writes", default=200, show_default=True)
@click.option("--fanout", default=3, show_default=True)
def main(nodes: int, writes: int, fanout: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="prop-bench-"))
    mesh = Mesh.start(root, nodes, "--sync-interval", "10", "--fanout", str(fanout))
    rng = random.Random(5)
    times: list[float] = []
    try:
        with ThreadPoolExecutor(nodes) as pool:
            for i in range(writes):
                target = mesh[rng.randrange(nodes)]
                reply = target.add(armored(10_000 + i, seed=b"prop"))
                replied = time.monotonic()
                assert reply.status == 200, reply.text
                fpr = fingerprint(10_000 + i, seed=b"prop")
                deadline = replied + 30
                live = mesh.live()
                lags = list(pool.map(_served_after, live, [fpr] * len(live),
                                     [replied] * len(live), [deadline] * len(live)))
                times.append(max(lags))
        times.sort()
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print(f"nodes={nodes} writes={writes} fanout={fanout} p50={p50 * 1000:.1f} ms "
              f"p99={p99 * 1000:.1f} ms max={times[-1] * 1000:.1f} ms")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "replication_propagation.json").write_text(json.dumps(
            {"nodes": nodes, "writes": writes, "fanout": fanout, "p50_s": p50, "p99_s": p99,
             "max_s": times[-1]}, indent=1))
    finally:
        mesh.close()


if __name__ == "__main__":
    main()
