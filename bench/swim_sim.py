"""Membership figures from the simulator, LAN profile: `python -m bench.swim_sim [--quick]`.

For n = 10, 50 and 200 it measures, in simulated time on a seeded SimNetwork:
- crash detection time, per observer (p50, p99) and until every node knows (p50, max);
- the time for a joining node to appear alive in every node's view;
- false "dead" declarations per node-hour at 0, 10, 20 and 30 % uniform packet loss;
- bytes sent per node per second in steady state (UDP frames and TCP push-pull, sealed sizes);
and prints them beside memberlist's formulas and Serf's convergence model (docs/membership.md).

Frames use the key-tag codec (same byte sizes as NaCl sealing, without the cipher's CPU cost).
Simulated durations shrink as n grows so the whole run stays within a few minutes; `make bench
--quick` (bench.run_all) calls run() for n = 10 and 50 with a quarter of the loss durations.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial

from bench.common import OUT_DIR
from meshkp.sim.cluster import Event, SimCluster
from meshkp.swim.config import SwimConfig
from meshkp.swim.formulas import (
    gossip_convergence_time,
    retransmit_limit,
    suspicion_max_timeout,
    suspicion_timeout,
)
from meshkp.swim.types import Status

LOSSES = (0.0, 0.10, 0.20, 0.30)


@dataclass(frozen=True)
class Plan:
    """Trial counts and simulated seconds for one cluster size."""

    n: int
    crashes: int
    joins: int
    fp_seconds: float  # simulated seconds per loss level
    bytes_window: float


PLANS = {
    10: Plan(10, crashes=12, joins=8, fp_seconds=1200.0, bytes_window=120.0),
    50: Plan(50, crashes=6, joins=5, fp_seconds=240.0, bytes_window=120.0),
    200: Plan(200, crashes=3, joins=3, fp_seconds=60.0, bytes_window=120.0),
}


@dataclass
class Result:
    n: int
    detect: list[float] = field(default_factory=list)  # per (crash, observer)
    detect_all: list[float] = field(default_factory=list)  # per crash: last observer
    join_all: list[float] = field(default_factory=list)
    false_per_node_hour: dict[float, tuple[int, float]] = field(default_factory=dict)
    bytes_per_node_s: float = 0.0
    simulated: float = 0.0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def settle(cluster: SimCluster, timeout: float = 180.0) -> None:
    if cluster.run_until(cluster.converged, timeout=timeout, step=0.5) is None:
        raise RuntimeError(f"cluster of {len(cluster.running())} did not converge")


def measure(plan: Plan, seed: int, config: SwimConfig) -> Result:
    with SimCluster(config, seed=seed, sealed=False) as cluster:
        return measure_on(cluster, plan, seed, config)


def measure_on(cluster: SimCluster, plan: Plan, seed: int, config: SwimConfig) -> Result:
    rng = random.Random(seed)
    res = Result(plan.n)
    cluster.start(plan.n, stagger=min(5.0, plan.n / 20))
    settle(cluster)
    cluster.run(60.0)  # let the join rebroadcasts drain: steady state from here

    # Bytes per node per second, steady state, no loss.
    before = sum(cluster.net.stats.bytes_sent.values())
    cluster.run(plan.bytes_window)
    res.bytes_per_node_s = (sum(cluster.net.stats.bytes_sent.values()) - before) / (
        plan.n * plan.bytes_window)

    # Join: a fresh node joins through one seed; time until every node lists it alive.
    for k in range(plan.joins):
        joiner = cluster.add_node(f"joiner-{k}", seeds=[cluster.nodes["node-0"].addr])
        took = cluster.run_until(partial(cluster.all_see, joiner.node_id, Status.ALIVE),
                                 timeout=120.0, step=0.05)
        if took is None:
            raise RuntimeError(f"{joiner.node_id} never reached every view")
        res.join_all.append(took)
        joiner.leave()
        cluster.run(config.leave_timeout)
        joiner.stop()
        cluster.run(rng.uniform(1.0, 5.0))

    # Crash detection: per observer, and until the last one knows.
    victims = [f"node-{rng.randrange(1, plan.n)}" for _ in range(plan.crashes)]
    for victim in victims:
        crashed_at = cluster.clock.now()
        seen: dict[str, float] = {}

        def listen(e: Event, victim: str = victim, seen: dict[str, float] = seen) -> None:
            if e.node == victim and e.new == Status.DEAD and e.observer not in seen:
                seen[e.observer] = e.at

        cluster.listeners.append(listen)
        cluster.crash(victim)
        took = cluster.run_until(partial(cluster.all_see, victim, Status.DEAD),
                                 timeout=180.0, step=0.05)
        cluster.listeners.remove(listen)
        if took is None:
            raise RuntimeError(f"crash of {victim} not detected by all")
        res.detect.extend(t - crashed_at for t in seen.values())
        res.detect_all.append(took)
        cluster.restart(victim)
        settle(cluster)
        cluster.run(rng.uniform(5.0, 15.0))

    # False positives: nobody fails, packets are lost uniformly at random.
    for loss in LOSSES:
        cluster.net.loss = loss
        start = len(cluster.events)
        cluster.run(plan.fp_seconds)
        false = sum(1 for e in cluster.events[start:] if e.new == Status.DEAD)
        node_hours = plan.n * plan.fp_seconds / 3600
        res.false_per_node_hour[loss] = (false, node_hours)
        cluster.net.loss = 0.0
        settle(cluster)
        say(f"  n={plan.n} loss={loss:.0%}: {false} false dead in {node_hours:.1f} node-hours")
    res.simulated = cluster.clock.now()
    return res


def row(res: Result) -> str:
    n = res.n
    low, high = suspicion_timeout(4, n, 1.0), suspicion_max_timeout(4, 6, n, 1.0)
    fp = " / ".join(f"{c / h:.2g}" if c else f"0 (<{1 / h:.2g})"
                    for c, h in res.false_per_node_hour.values())
    return (
        f"| {n} | {low:.1f} / {high:.1f} s | {retransmit_limit(4, n)} "
        f"| {gossip_convergence_time(n, 3, 0.2):.2f} s "
        f"| {statistics.median(res.join_all):.2f} s (max {max(res.join_all):.2f}) "
        f"| {pct(res.detect, 0.5):.1f} / {pct(res.detect, 0.99):.1f} s "
        f"| {statistics.median(res.detect_all):.1f} s (max {max(res.detect_all):.1f}) "
        f"| {fp} | {res.bytes_per_node_s:.0f} |"
    )


HEADER = (
    "| n | memberlist suspicion min / max | retransmits | Serf model: 99.99 % in "
    "| join reaches all: p50 | crash detection p50 / p99 (per node) | crash known by all: p50 "
    "| false dead per node-hour at 0 / 10 / 20 / 30 % loss | bytes / node / s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def run(sizes: str = "10,50", quick: bool = True, seed: int = 2024,
        final_probe: bool = True) -> list[Result]:
    """Measure each size, print the markdown table and write bench/out/swim_sim.json."""
    config = dataclasses.replace(SwimConfig.lan(), final_probe=final_probe)
    results = []
    for n in (int(x) for x in sizes.split(",")):
        plan = PLANS.get(n, Plan(n, 5, 5, 300.0, 120.0))
        if quick:
            plan = Plan(n, max(2, plan.crashes // 2), max(2, plan.joins // 2),
                        plan.fp_seconds / 4, plan.bytes_window)
        t0 = time.perf_counter()
        say(f"n={n}: {plan}")
        res = measure(plan, seed + n, config)
        say(f"n={n}: {res.simulated:.0f} simulated s in {time.perf_counter() - t0:.0f} s")
        results.append(res)
    print(HEADER)
    for res in results:
        print(row(res))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "swim_sim.json").write_text(json.dumps(
        {"profile": "lan", "final_probe": final_probe, "quick": quick,
         "results": [summary(r) for r in results]}, indent=2) + "\n")
    return results


def summary(res: Result) -> dict[str, object]:
    return {
        "n": res.n,
        "detect_p50_s": pct(res.detect, 0.5), "detect_p99_s": pct(res.detect, 0.99),
        "detect_all_p50_s": statistics.median(res.detect_all),
        "detect_all_max_s": max(res.detect_all),
        "join_all_p50_s": statistics.median(res.join_all), "join_all_max_s": max(res.join_all),
        "false_dead": {f"{loss:.2f}": {"events": c, "node_hours": h}
                       for loss, (c, h) in res.false_per_node_hour.items()},
        "bytes_per_node_s": res.bytes_per_node_s,
        "simulated_s": res.simulated,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10,50,200", help="comma-separated cluster sizes")
    parser.add_argument("--quick", action="store_true", help="quarter the simulated durations")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--no-final-probe", action="store_true",
                        help="declare dead when the suspicion timer runs out, as memberlist does")
    args = parser.parse_args(argv)
    run(args.sizes, args.quick, args.seed, final_probe=not args.no_final_probe)


if __name__ == "__main__":
    main()
