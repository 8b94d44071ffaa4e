"""Chaos run 2: SIGSTOP a node for longer than the suspicion timeout during a write stream.
The others must declare it dead; after SIGCONT it must rejoin (alive everywhere) and catch up
on what was written meanwhile."""

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
DEAD_WITHIN_S = 60.0  # bound of the wait for every other node to declare the victim dead
# Keep it paused (and writing) this long after it was declared dead: longer than the test
# profile's gossip_to_the_dead_time (5 s), so the others have stopped gossiping to it and it
# must rejoin through refutation and reconnect probes.
STAY_DEAD_S = 8.0


def test_sigstop_longer_than_suspicion_timeout(
    launch: Callable[..., ChaosCluster], report: Callable[[str, int], RunReport], seed: int,
) -> None:
    cluster = launch(N)
    run = report("pause", N)
    assert poll(cluster.all_alive, 60) is not None, "the mesh never formed"
    ledger = Ledger()
    writer = Writer(cluster, ledger, key_stream(b"chaos-pause"),
                    targets=lambda: [i for i in range(N) if i not in cluster.paused],
                    delete_every=15, max_writes=1200, seed=seed)
    victim = random.Random(seed).randrange(N)
    run.extra["victim"] = cluster.node_id(victim)
    others = [i for i in range(N) if i != victim]
    writer.start()
    try:
        wait_writes(ledger, 30, 30)
        cluster.pause(victim)
        declared = poll(lambda: all(cluster.sees_dead(o, victim) for o in others), DEAD_WITHIN_S)
        run.extra["declared_dead_s"] = None if declared is None else round(declared, 1)
        assert declared is not None, f"n{victim} paused but not declared dead by all others"
        time.sleep(STAY_DEAD_S)
    finally:
        writer.stop()
        healed_at = time.monotonic()
        if victim in cluster.paused:
            cluster.resume(victim)
    assert writer.error is None, writer.error
    verify(cluster, ledger, run, healed_at)
    print(run.line())
    assert not run.problems(), run.problems()
