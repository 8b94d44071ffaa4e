"""Randomized fault schedules for the simulation: one seed, one reproducible run, then checks."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from meshkp.control.raft.membership import ChangeOp
from meshkp.control.raft.types import Entry, Restored
from tests.unit.control.simcluster import Cluster, Disk, DiskLike, NetConfig

# After the faults stop, a leader must hold a lease within this (simulated seconds), and every
# live node must have applied the same last entry within SETTLE more.
LIVENESS_S = 10.0
SETTLE_S = 5.0


def run_schedule(seed: int, duration: float = 12.0,
                 disk: Callable[[Restored], DiskLike] = Disk.founded,
                 on_apply: Callable[[Cluster, str, Entry], None] | None = None,
                 membership: bool = False, **cluster_args: Any) -> Cluster:
    """Crashes, restarts, partitions, pauses longer than the lease, loss, duplication and
    reordering for `duration` simulated seconds; raises SafetyViolation on any broken rule.

    With `membership`, five nodes start as three voters and two learners, and the schedule also
    promotes and demotes members through the log while the faults go on."""
    rng = random.Random(seed)
    size = 5 if membership else rng.choice((3, 5, 5))
    if membership:
        cluster_args["voters"] = ["n0", "n1", "n2"]
        # "Minority" depends on the configuration: two of four voters may remove a third and
        # then commit as two of three (safely: the others cannot form a majority of either).
        # The commit-on-a-majority check still holds against each leader's configuration.
        cluster_args["check_minority"] = False
    net = NetConfig(loss=rng.choice((0.0, 0.02, 0.1)), duplicate=rng.choice((0.0, 0.05)),
                    delay_min=0.0005, delay_max=rng.choice((0.005, 0.03, 0.2)))
    cluster = Cluster(seed, [f"n{i}" for i in range(size)], net=net, disk=disk, **cluster_args)
    if on_apply is not None:
        hook = on_apply
        cluster.on_apply = lambda node_id, entry: hook(cluster, node_id, entry)
    cluster.schedule.append(f"seed {seed}: {size} nodes, loss {net.loss}, dup {net.duplicate}, "
                            f"delay <= {net.delay_max}")
    ids = list(cluster.nodes)
    crashed: set[str] = set()
    paused: set[str] = set()
    next_fault = rng.uniform(0.5, 2.0)
    while cluster.now < duration:
        if cluster.now >= next_fault:
            if membership and rng.random() < 0.3:
                _change(cluster, rng)
            else:
                _fault(cluster, rng, ids, crashed, paused)
            next_fault = cluster.now + rng.uniform(0.2, 2.0)
        if rng.random() < 0.5:
            cluster.propose()
        cluster.run_until(cluster.now + 0.05)
    # Faults end: everything comes back, and the cluster must recover on its own.
    cluster.heal()
    for node_id in sorted(paused):
        cluster.resume(node_id)
    cluster.torn_writes = 0.0
    for node_id in sorted(crashed | cluster.torn):
        cluster.restart(node_id)
    cluster.net.loss = cluster.net.duplicate = 0.0
    if cluster.run_until_leader(LIVENESS_S) is None:
        raise cluster.fail(f"liveness: no leader within {LIVENESS_S} s of healing")
    end = cluster.now + SETTLE_S
    while not cluster.propose() and cluster.now < end:
        cluster.run_until(cluster.now + 0.05)
    while not cluster.converged() and cluster.now < end:
        cluster.run_until(cluster.now + 0.05)
    if not cluster.converged():
        states = {n.id: n.machine.index for n in cluster.nodes.values()}
        raise cluster.fail(f"liveness: nodes did not converge within {SETTLE_S} s: {states}")
    cluster.check_log_matching()
    return cluster


def _change(cluster: Cluster, rng: random.Random) -> None:
    leader = cluster.leased_leader()
    if leader is None:
        return
    core = cluster.nodes[leader].core
    assert core is not None
    voters, learners = sorted(core.configuration.voters), sorted(core.configuration.learners)
    if learners and (len(voters) < 3 or rng.random() < 0.5):
        op, node = ChangeOp.PROMOTE, rng.choice(learners)
    else:
        op, node = ChangeOp.DEMOTE, rng.choice(voters)
    if cluster.change(op, node):
        cluster.schedule.append(f"{cluster.now:.3f} {op.name.lower()} {node}")


def _fault(cluster: Cluster, rng: random.Random, ids: list[str], crashed: set[str],
           paused: set[str]) -> None:
    kind = rng.choice(("crash", "restart", "partition", "heal", "pause", "resume", "leader"))
    up = [i for i in ids if i not in crashed and i not in paused]
    if kind == "crash" and len(up) > 1:
        victim = rng.choice(up)
        cluster.crash(victim)
        crashed.add(victim)
    elif kind == "restart" and crashed:
        node_id = rng.choice(sorted(crashed))
        cluster.restart(node_id)
        crashed.discard(node_id)
    elif kind == "partition":
        shuffled = rng.sample(ids, len(ids))
        cut = rng.randint(1, len(ids) - 1)
        cluster.partition(set(shuffled[:cut]), set(shuffled[cut:]))
    elif kind == "heal":
        cluster.heal()
    elif kind == "pause" and up:
        victim = rng.choice(up)
        cluster.pause(victim)
        paused.add(victim)
    elif kind == "resume" and paused:
        node_id = rng.choice(sorted(paused))
        cluster.resume(node_id)
        paused.discard(node_id)
    elif kind == "leader":
        # The leader, if any, is the most interesting victim: crash or isolate it.
        leader = cluster.leased_leader()
        if leader is not None and leader not in crashed:
            if rng.random() < 0.5:
                cluster.crash(leader)
                crashed.add(leader)
            else:
                cluster.partition({leader})
