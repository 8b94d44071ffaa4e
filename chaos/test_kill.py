"""Chaos run 1: kill -9 random nodes during a write stream and restart them, then kill -9
every node at once right after a burst of writes that had no time to spread, and restart them
all. No acknowledged write may be lost (/pks/add acknowledges only after a synced LevelDB
write), and no acknowledged delete undone."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from chaos.cluster import ChaosCluster, poll
from chaos.invariants import RunReport, verify
from chaos.workload import Ledger, Writer, key_stream, wait_writes

pytestmark = pytest.mark.chaos

N = 5
STREAM_S = 45.0  # how long the writer runs while nodes are killed
MAX_DOWN = 2  # at most this many nodes down at once: quorum (3 of 5) stays reachable
BURST = 40  # writes just before every node is killed at once


def test_kill9_during_write_stream(
    launch: Callable[..., ChaosCluster], report: Callable[[str, int], RunReport], seed: int,
) -> None:
    cluster = launch(N)
    run = report("kill9", N)
    assert poll(cluster.all_alive, 60) is not None, "the mesh never formed"
    rng = random.Random(seed)
    ledger = Ledger()
    writer = Writer(cluster, ledger, key_stream(b"chaos-kill"), targets=lambda: list(range(N)),
                    delete_every=15, max_writes=1200, seed=seed)
    down: dict[int, float] = {}  # node -> when to restart it
    kills = 0
    writer.start()
    try:
        wait_writes(ledger, 20, 30)
        deadline = time.monotonic() + STREAM_S
        while time.monotonic() < deadline:
            for i, when in sorted(down.items()):
                if time.monotonic() >= when:
                    cluster.start_node(i)
                    del down[i]
            if len(down) < MAX_DOWN:
                victim = rng.choice([i for i in range(N) if i not in down])
                cluster.kill(victim)
                kills += 1
                down[victim] = time.monotonic() + rng.uniform(1.0, 5.0)
            time.sleep(rng.uniform(1.5, 4.0))
    finally:
        writer.stop()
    cluster.restart_all()
    assert writer.error is None, writer.error
    # The burst's writes are acknowledged by one node each and mostly not yet pushed anywhere.
    burst = Writer(cluster, ledger, key_stream(b"chaos-kill-burst"), targets=lambda: list(range(N)),
                   levels=("one",), max_writes=BURST, interval_s=0.0, seed=seed)
    before = ledger.attempted
    burst.start()
    try:
        wait_writes(ledger, before + BURST, 60)
    finally:
        cluster.kill_all()
        burst.stop()
    assert burst.error is None, burst.error
    healed_at = time.monotonic()  # every node restarts now
    cluster.restart_all()
    run.extra["kills"] = kills + N
    verify(cluster, ledger, run, healed_at)
    print(run.line())
    assert not run.problems(), run.problems()
