"""Chaos run 1: kill -9 random nodes during a write stream, restart them; no acknowledged
write may be lost (/pks/add acknowledges only after a synced LevelDB write)."""

from __future__ import annotations

import random
import time

import pytest

from chaos.cluster import poll
from chaos.invariants import verify
from chaos.workload import Ledger, Writer, key_stream, wait_writes

pytestmark = pytest.mark.chaos

N = 5
STREAM_S = 45.0  # how long the writer runs while nodes are killed
MAX_DOWN = 2  # at most this many nodes down at once: quorum (3 of 5) stays reachable
SEED = 20240601


def test_kill9_during_write_stream(launch, report) -> None:  # type: ignore[no-untyped-def]
    cluster = launch(N)
    run = report("kill9", N)
    assert poll(cluster.all_alive, 60) is not None, "the mesh never formed"
    rng = random.Random(SEED)
    ledger = Ledger()
    writer = Writer(cluster, ledger, key_stream(b"chaos-kill"), targets=lambda: list(range(N)),
                    delete_every=15, max_writes=1200, seed=SEED)
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
    healed_at = time.monotonic()  # the last restarts begin now
    for i in sorted(down):
        cluster.start_node(i)
    assert writer.error is None, writer.error
    run.extra["kills"] = kills
    verify(cluster, ledger, run, healed_at)
    print(run.line())
    assert not run.problems(), run.problems()
