"""Chaos run 4: a partition with writes on both sides, a delete on one side and a concurrent
upload of the same key on the other. After healing the key is a conflict on every node, it is
served by none (policy delete-wins), and every root is equal."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chaos.cluster import ChaosCluster, poll
from chaos.invariants import RunReport, verify
from chaos.workload import Ledger, Writer, key_stream
from tests.integration.replication_mesh import armored, fingerprint, with_user_id

pytestmark = [pytest.mark.chaos, pytest.mark.netns]

N = 5
SIDE_A, SIDE_B = [0, 1, 2], [3, 4]
BASE_SEED = b"chaos-conflict-base"
SPLIT_S = 8.0


def test_delete_and_concurrent_upload_across_a_partition(
    launch: Callable[..., ChaosCluster], report: Callable[[str, int], RunReport], seed: int,
) -> None:
    cluster = launch(N, netns=True)
    assert cluster.topology is not None
    run = report("conflict", N)
    assert poll(cluster.all_alive, 60) is not None, "the mesh never formed"
    ledger = Ledger()
    # Two keys every node holds before the split: each is deleted on one side and updated
    # (a new user ID) on the other.
    for index in range(2):
        reply = cluster[0].add(armored(index, BASE_SEED, with_subkey=False),
                               headers={"X-Consistency": "all"})
        assert reply.status == 200, reply.text
        ledger.acked[fingerprint(index, BASE_SEED)] = "all"
    plan = [(0, SIDE_A[1], SIDE_B[1]), (1, SIDE_B[0], SIDE_A[2])]  # (key, deleter, updater)
    writers = [
        Writer(cluster, ledger, key_stream(b"chaos-conflict-a"), targets=lambda: SIDE_A,
               levels=("one", "quorum"), max_writes=400, seed=seed),
        Writer(cluster, ledger, key_stream(b"chaos-conflict-b"), targets=lambda: SIDE_B,
               levels=("one",), max_writes=400, seed=seed + 1),
    ]
    cluster.topology.partition([SIDE_A, SIDE_B])
    for writer in writers:
        writer.start()
    try:
        for index, deleter, updater in plan:
            fpr = fingerprint(index, BASE_SEED)
            cluster.delete(deleter, fpr, reason="chaos takedown", actor="chaos")
            ledger.deleted.add(fpr)
            update = with_user_id(index, f"Concurrent {index} <concurrent{index}@example.org>",
                                  seed=BASE_SEED)
            reply = cluster[updater].add(update)
            assert reply.status == 200, f"concurrent update refused on n{updater}: {reply.text}"
        time.sleep(SPLIT_S)
    finally:
        for writer in writers:
            writer.stop()
        healed_at = time.monotonic()
        cluster.topology.heal()
    assert all(w.error is None for w in writers), [w.error for w in writers]
    verify(cluster, ledger, run, healed_at)
    conflicted = {fingerprint(index, BASE_SEED) for index, _, _ in plan}
    missing = {cluster.node_id(i): sorted(conflicted - cluster.conflicts(i)) for i in range(N)}
    missing = {node: fprs for node, fprs in missing.items() if fprs}
    run.extra["conflict_on_every_node"] = not missing
    print(run.line())
    assert not run.problems(), run.problems()
    assert not missing, f"conflicts not listed: {missing}"
