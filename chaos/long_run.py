"""A long chaos run: N nodes in namespaces (lan profile), mixed workload, a random nemesis
schedule from a seed, for a duration; prints the seed first so a failure can be replayed.

    make chaos-long DURATION=30m NODES=12 SEED=7
    .venv/bin/python -m chaos.long_run --duration 30m --nodes 12 --seed 7

Besides the checker's verdict it reports each node's CPU seconds and peak RSS, sampled from
/proc every few seconds. Exit status 0 only when the run found no problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from chaos import nemesis as nem
from chaos.cluster import ChaosCluster
from chaos.invariants import OUT_DIR
from chaos.netns import Topology, unavailable_reason
from chaos.scenario import Scenario, run
from chaos.schedule import schedule

HOLD_S = 30.0  # each fault: longer than the LAN suspicion timeout
# Two sync intervals of writes going on after a heal, then quiet: the time to equal roots after
# the pause tells anti-entropy's speed apart from the writers' keys still in flight.
QUIESCE_AFTER_S = 20.0
# Upper bounds of each writer's and the policy writer's operations per second of the run (they
# measured ~3.5 and ~2 on 12 loaded nodes); only the bound of their loops.
WRITER_OPS_PER_S = 10.0
POLICY_OPS_PER_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if match is None:
        raise SystemExit(f"--duration {text!r}: write e.g. 90s, 30m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


class ResourceSampler:
    """CPU seconds and peak RSS (MiB) per node process, from /proc/PID/stat and status."""

    def __init__(self, cluster: ChaosCluster, every_s: float = 5.0) -> None:
        self.cluster, self.every_s = cluster, every_s
        self.cpu_s: dict[str, float] = {}
        self.rss_mib: dict[str, float] = {}
        self._base: dict[tuple[str, int], float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="chaos-resources")

    def _sample(self) -> None:
        for i, node in enumerate(self.cluster.nodes):
            if node is None:
                continue
            name, pid = self.cluster.node_id(i), node.proc.pid
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
            # A restarted node is a new process: add what its earlier processes used.
            key = (name, pid)
            earlier = sum(v for (n, p), v in self._base.items() if n == name and p != pid)
            self._base[key] = cpu
            self.cpu_s[name] = round(earlier + cpu, 1)
            rss = re.search(r"VmHWM:\s+(\d+) kB", status)
            if rss:
                self.rss_mib[name] = max(self.rss_mib.get(name, 0.0), round(int(rss.group(1)) / 1024, 1))

    def _run(self) -> None:
        while not self.stopping.wait(self.every_s):
            self._sample()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._sample()
        self.stopping.set()
        self.thread.join(self.every_s * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30m")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--hold", type=float, default=HOLD_S)
    parser.add_argument("--quiesce-after", type=float, default=QUIESCE_AFTER_S,
                        help="pause the writers this long after a heal if the roots still differ "
                             "(0: never; docs/chaos.md)")
    args = parser.parse_args(argv)
    seconds = parse_duration(args.duration)
    print(f"chaos long run: seed={args.seed} nodes={args.nodes} duration={seconds:.0f}s "
          f"(replay: --seed {args.seed})", flush=True)
    reason = unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    # Each fault takes about hold + convergence (~10 s) + its start and stop.
    count = max(1, int(seconds // (args.hold + 15)))
    faults: list[nem.Nemesis] = schedule(args.seed, args.nodes, count)
    # The writers' bounds must outlast the whole run (faults, waits for convergence): at
    # twice the schedule's length they never stop early, and still stop.
    budget_s = 2 * count * (args.hold + 90.0)
    print("schedule: " + ", ".join(f.name for f in faults), flush=True)
    topology = Topology(args.nodes)
    topology.create()
    cluster = None
    try:
        with tempfile.TemporaryDirectory(prefix="meshkp-chaos-long-") as tmp:
            cluster = ChaosCluster.launch(Path(tmp) / "mesh", args.nodes, topology=topology,
                                          profile="lan", sync_interval_s=10.0)
            sampler = ResourceSampler(cluster)
            sampler.start()
            name = f"long-{args.nodes}n-seed{args.seed}"
            try:
                outcome = run(cluster, Scenario(name, faults, hold_s=args.hold, seed=args.seed,
                                                control=True, writers=4,
                                                quiesce_after_s=args.quiesce_after or None,
                                                max_writer_ops=int(budget_s * WRITER_OPS_PER_S),
                                                max_policy_ops=int(budget_s * POLICY_OPS_PER_S)))
            finally:
                sampler.stop()
            outcome.extra["cpu_s"] = sampler.cpu_s
            outcome.extra["peak_rss_mib"] = sampler.rss_mib
            print(outcome.table)
            print(json.dumps({"seed": args.seed, "problems": outcome.problems, **outcome.extra},
                             default=str, indent=1))
            (OUT_DIR / f"{name}.resources.json").write_text(
                json.dumps({"cpu_s": sampler.cpu_s, "peak_rss_mib": sampler.rss_mib}) + "\n")
            cluster.close()
            cluster = None
            return 1 if outcome.problems else 0
    finally:
        if cluster is not None:
            cluster.close()
        topology.close()


if __name__ == "__main__":
    raise SystemExit(main())
