"""Propagation in a mesh of real `meshkp serve` processes on loopback (issues 5 and 11).

Each write is a POST /pks/add to a random node; the figure is the time until the last node has
it. Two ways to see that moment:

- `--measure lag` (the default): every receiver observes, when it has merged a pushed write,
  the time since the accepting node committed it (`meshkp_replication_lag_seconds`, whose
  `_sum` and `_count` this reads from every node's /metrics after each write has settled).
  Nothing polls while the write spreads, so the figure is the mesh's alone; it starts at the
  accepting node's commit, before the client has its reply, so it is slightly the stricter.
- `--measure poll` (issue 5's method): after the add reply, poll every node with op=get (one
  thread per node, `--poll-ms` apart, a new HTTP connection per poll) until all serve the key.
  On 10 nodes that is ~2,000 requests a second on the same 2 cores while the write spreads;
  the bench's own CPU is reported so that cost can be seen.

Before each write the mesh is left quiet for `--gap` seconds. Reports p50/p99/max over the
writes, the add reply's latency, the load average and the client's CPU.

    python -m bench.replication_propagation --nodes 10 --writes 200
    python -m bench.replication_propagation --nodes 10 --writes 200 --measure poll
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from bench.common import OUT_DIR
from tests.integration.conftest import ServerProcess
from tests.integration.replication_mesh import Mesh, armored, fingerprint

LAG = "meshkp_replication_lag_seconds"
# Seconds a write may take to reach every node before the run is declared failed.
SETTLE_S = 30.0


def _served_after(node: ServerProcess, fpr: str, since: float, deadline: float, poll: float) -> float:
    while time.monotonic() < deadline:
        if node.lookup(op="get", search="0x" + fpr).status == 200:
            return time.monotonic() - since
        time.sleep(poll)
    return float("inf")


def lag_totals(node: ServerProcess) -> tuple[float, int]:
    """(sum of seconds, count) of the node's push-lag histogram."""
    text = node.request("GET", "/metrics").body.decode()
    found = dict(re.findall(rf"^{LAG}_(sum|count) ([0-9.e+-]+)$", text, re.M))
    return float(found.get("sum", 0.0)), int(float(found.get("count", 0)))


def lag_of_write(nodes: Sequence[ServerProcess], before: list[tuple[float, int]],
                 target: ServerProcess, pool: ThreadPoolExecutor) -> tuple[float, list[tuple[float, int]]]:
    """The write's lag to its last receiver (s), once every receiver observed it once; and the
    totals after it (the next write's `before`)."""
    deadline = time.monotonic() + SETTLE_S
    time.sleep(0.05)  # most writes have reached every node by now: one scrape round usually
    while True:
        after = list(pool.map(lag_totals, nodes))
        lags = [a[0] - b[0] for node, a, b in zip(nodes, after, before, strict=True)
                if node is not target and a[1] > b[1]]
        receivers = sum(1 for node in nodes if node is not target)
        if len(lags) == receivers:
            counts = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
            if max(counts) > 1:  # a relay or a second push: the sums mix two samples
                raise RuntimeError(f"a node observed {max(counts)} pushes of one write")
            return max(lags), after
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(lags)} of {receivers} nodes merged the write")
        time.sleep(0.05)


@click.command()
@click.option("--nodes", default=10, show_default=True)
@click.option("--writes", default=200, show_default=True)
@click.option("--fanout", default=3, show_default=True)
@click.option("--measure", default="lag", show_default=True, type=click.Choice(["lag", "poll"]))
@click.option("--poll-ms", default=5.0, show_default=True, help="Poll period of --measure poll.")
@click.option("--level", default="one", show_default=True, type=click.Choice(["one", "all"]),
              help="x-consistency of the writes (all: the reply waits for every node's ack).")
@click.option("--gap", default=0.1, show_default=True,
              help="Seconds of quiet before each write (after the last node had the previous one).")
def main(nodes: int, writes: int, fanout: int, measure: str, poll_ms: float, level: str,
         gap: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="prop-bench-"))
    mesh = Mesh.start(root, nodes, "--sync-interval", "10", "--fanout", str(fanout))
    rng = random.Random(5)
    times: list[float] = []
    replies: list[float] = []
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    try:
        with ThreadPoolExecutor(nodes) as pool:
            live = mesh.live()
            totals = list(pool.map(lag_totals, live))
            for i in range(writes):
                time.sleep(gap)  # the scrapes or polls of the previous write are over
                target = mesh[rng.randrange(nodes)]
                began = time.monotonic()
                reply = target.add(armored(10_000 + i, seed=b"prop"),
                                   headers={"X-Consistency": level})
                replied = time.monotonic()
                replies.append(replied - began)
                assert reply.status == 200, reply.text
                if measure == "lag":
                    lag, totals = lag_of_write(live, totals, target, pool)
                    times.append(lag)
                    continue
                fpr = fingerprint(10_000 + i, seed=b"prop")
                deadline = replied + SETTLE_S
                lags = list(pool.map(_served_after, live, [fpr] * len(live),
                                     [replied] * len(live), [deadline] * len(live),
                                     [poll_ms / 1000] * len(live)))
                times.append(max(lags))
        client_cpu = time.process_time() - cpu_before
        times.sort()
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        load_after = os.getloadavg()[0]
        replies.sort()
        print(f"add reply ({level}) p50={statistics.median(replies) * 1000:.1f} ms "
              f"p99={replies[min(len(replies) - 1, int(0.99 * len(replies)))] * 1000:.1f} ms")
        print(f"nodes={nodes} writes={writes} fanout={fanout} measure={measure} "
              f"p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms max={times[-1] * 1000:.1f} ms "
              f"client_cpu={client_cpu:.1f} s load={load_before:.1f}->{load_after:.1f}")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / f"replication_propagation_{measure}.json").write_text(json.dumps(
            {"nodes": nodes, "writes": writes, "fanout": fanout, "measure": measure, "level": level,
             "reply_p50_s": statistics.median(replies),
             "p50_s": p50, "p99_s": p99, "max_s": times[-1], "client_cpu_s": client_cpu,
             "load_average": [load_before, load_after]}, indent=1))
    finally:
        mesh.close()


if __name__ == "__main__":
    main()
