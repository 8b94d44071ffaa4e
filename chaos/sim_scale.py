"""Membership of 200 nodes in the simulator (meshkp/sim: SimNetwork + FakeClock, the production
SWIM driver, LAN profile) under the chaos tier's nemeses: a partition held past the suspicion
timeout, the majorities' minority (a 1/3 split), 30% loss, SIGSTOP of 5% of the nodes, kill of
5% and their restart. For each: false deaths (a live, reachable node declared dead), and the
simulated seconds from the heal until every node sees every node alive.

    .venv/bin/python -m chaos.sim_scale --nodes 200 --seed 1

(The control plane's own simulation at scale is tests/unit/control: 5 voters and learners; its
autopilot keeps at most 5 voters whatever the node count, so 200 nodes add learners only.)
"""

from __future__ import annotations

import argparse
import json
import random
import time

from meshkp.sim.cluster import SimCluster
from meshkp.swim.config import SwimConfig
from meshkp.swim.types import Status

HOLD_S = 60.0  # > the LAN suspicion timeout at 200 nodes (4 * log10(200) * 1 s * 6 at most)
HEAL_BOUND_S = 120.0
# Polling resolution of the convergence checks: each check reads every node's view (n^2), so a
# fine step costs more than the simulation itself at 200 nodes.
STEP_S = 1.0


def started(n: int, seed: int) -> SimCluster:
    cluster = SimCluster(SwimConfig.lan(), seed=seed, sealed=False)
    cluster.start(n, stagger=0.05)
    if cluster.run_until(cluster.converged, timeout=300.0, step=STEP_S) is None:
        raise SystemExit(f"{n} nodes never converged")
    return cluster


def heal_time(cluster: SimCluster) -> float | None:
    return cluster.run_until(cluster.converged, timeout=HEAL_BOUND_S, step=STEP_S)


def scenario_split(n: int, seed: int, fraction: float) -> dict[str, object]:
    cluster = started(n, seed)
    try:
        names = sorted(cluster.nodes)
        random.Random(seed).shuffle(names)
        cut = int(n * fraction)
        cluster.partition(names[:cut], names[cut:])
        cluster.run(HOLD_S)
        cluster.heal()
        return {"heal_to_all_alive_s": heal_time(cluster)}
    finally:
        cluster.close()


def scenario_loss(n: int, seed: int, loss: float) -> dict[str, object]:
    cluster = started(n, seed)
    try:
        before = len(cluster.events)
        cluster.net.loss = loss
        cluster.run(HOLD_S)
        cluster.net.loss = 0.0
        deaths = [e for e in cluster.events[before:] if e.new == Status.DEAD]
        return {"false_deaths": len(deaths), "heal_to_all_alive_s": heal_time(cluster)}
    finally:
        cluster.close()


def scenario_pause_or_kill(n: int, seed: int, kill: bool) -> dict[str, object]:
    cluster = started(n, seed)
    try:
        victims = random.Random(seed).sample(sorted(cluster.nodes), max(1, n // 20))
        for v in victims:
            (cluster.crash if kill else cluster.pause)(v)
        others = [node for node in cluster.running() if node.node_id not in victims]
        detected = cluster.run_until(
            lambda: all(cluster.all_see(v, Status.DEAD, others) for v in victims), timeout=HOLD_S * 2,
            step=STEP_S)
        for v in victims:
            if kill:
                cluster.restart(v)
            else:
                cluster.resume(v)
        return {"victims": len(victims), "declared_dead_by_all_s": detected,
                "heal_to_all_alive_s": heal_time(cluster)}
    finally:
        cluster.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", action="append", default=[], help="run only these scenarios")
    args = parser.parse_args()
    runs = {
        "partition-1/2": lambda: scenario_split(args.nodes, args.seed, 0.5),
        "partition-1/3": lambda: scenario_split(args.nodes, args.seed, 1 / 3),
        "loss30": lambda: scenario_loss(args.nodes, args.seed, 0.3),
        "pause-5pct": lambda: scenario_pause_or_kill(args.nodes, args.seed, kill=False),
        "kill-5pct": lambda: scenario_pause_or_kill(args.nodes, args.seed, kill=True),
    }
    print(f"sim scale: nodes={args.nodes} seed={args.seed} profile=lan", flush=True)
    for name, fn in runs.items():
        if args.only and name not in args.only:
            continue
        began = time.monotonic()
        result = fn()
        result["wall_s"] = round(time.monotonic() - began, 1)
        print(json.dumps({"scenario": name, **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
