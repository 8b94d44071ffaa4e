"""Anti-entropy's diff protocols: compact v3 by default, v2 or v1 with an older peer, a
garbage query refused and counted, and a far-behind node copying the peer's store instead of
descending."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from meshkp.replication import replicator as replicator_module
from meshkp.replication.messages import DiffQuery, SyncError
from meshkp.replication.peers import PeerRef

from .helpers import FAST, Mesh, certificate

N0 = PeerRef("n0", ("127.0.0.1", 0))


class Counting:
    """n0's replicator, counting the diff queries it gets and the protocol of each."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.queries: list[bytes] = []

    async def handle(self, sender: str | None, message: Any) -> Any:
        if isinstance(message, DiffQuery):
            self.queries.append(message.data)
        return await self.inner.handle(sender, message)


async def _apart(config: Any = FAST, common: int = 30, extra: int = 6) -> Mesh:
    """n0 and n1 share `common` keys; n0 holds `extra` more that n1 lacks."""
    # Key generation would run on the event loop in upload(): warm its cache in a thread.
    await asyncio.to_thread(lambda: [certificate(i) for i in (*range(common + extra), 500)])
    mesh = Mesh(2, config)
    await mesh[0].upload(*range(common))
    await mesh.settle()
    mesh.net.down.add("n1")
    await mesh[0].upload(*range(common, common + extra))
    await mesh.settle()
    mesh.net.down.clear()
    return mesh


async def test_a_round_speaks_the_compact_diff_and_converges() -> None:
    mesh = await _apart()
    counting = Counting(mesh[0].replicator)
    mesh.net.add("n0", counting)
    outcome = await mesh[1].replicator.sync_with(N0)
    assert outcome is not None and outcome.keys_pulled == 6
    assert await mesh[1].root() == await mesh[0].root()
    assert counting.queries and all(q[:2] == b"\xc1\x03" for q in counting.queries)


async def test_an_older_peer_refusing_the_compact_diff_is_spoken_to_in_v1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = await _apart()
    # n0 answers as a node before the compact diff does: every query goes to the v1 responder.
    monkeypatch.setattr(replicator_module, "is_recon_query", lambda data: False)
    first = await mesh[1].replicator.sync_with(N0)
    assert first is not None and first.keys_pulled == 6
    assert await mesh[1].root() == await mesh[0].root()
    assert mesh[1].replicator._peer_diff_versions["n0"] == 1
    second = await mesh[1].replicator.sync_with(N0)  # straight to v1 now: one query
    assert second is not None and second.in_sync and second.meter.requests == 1


async def test_a_peer_speaking_only_v2_is_spoken_to_in_v2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = await _apart()
    counting = Counting(mesh[0].replicator)
    mesh.net.add("n0", counting)
    # n0 answers as a v2 node does: only a v2 query goes to the compact responder.
    monkeypatch.setattr(replicator_module, "is_recon_query", lambda data: data[:2] == b"\x95\x02")
    first = await mesh[1].replicator.sync_with(N0)
    assert first is not None and first.keys_pulled == 6
    assert await mesh[1].root() == await mesh[0].root()
    assert mesh[1].replicator._peer_diff_versions["n0"] == 2
    assert counting.queries[0][:2] == b"\xc1\x03" and counting.queries[1][:2] == b"\x95\x02"
    counting.queries.clear()
    second = await mesh[1].replicator.sync_with(N0)
    assert second is not None and second.in_sync
    assert [q[:2] for q in counting.queries] == [b"\x95\x02"]


async def test_a_garbage_diff_query_is_refused_counted_and_changes_nothing() -> None:
    mesh = await _apart()
    before = await mesh[0].root()
    for garbage in (b"\x95\x02" + b"\xff" * 40, b"\x95\x02\xc4\x01\x00\xc0\xc4\x00\xc4\x00",
                    b"\xc1\x03" + b"\xff" * 40, b"\xc1\x03\x04" + bytes(8) + b"\x05\x01"):
        reply = await mesh[0].replicator.handle("n1", DiffQuery(garbage))
        assert isinstance(reply, SyncError) and "recon query" in reply.reason
    assert mesh[0].replicator.counters.batches_rejected == 4
    assert await mesh[0].root() == before


async def test_a_far_behind_node_copies_the_peers_store_instead_of_descending(
        caplog: pytest.LogCaptureFixture) -> None:
    config = dataclasses.replace(FAST, far_behind_differences=20)
    mesh = await _apart(config, common=10, extra=50)
    await mesh[1].upload(500)  # held only here: the copy must keep it
    caplog.set_level(logging.INFO)
    outcome = await mesh[1].replicator.sync_with(N0)
    assert outcome is not None
    assert "event=sync_far_behind" in caplog.text and "event=bootstrap_done" in caplog.text
    assert await mesh[1].get(500) is not None
    for index in range(60):
        assert await mesh[1].get(index) is not None
    assert mesh[1].raw.counter("keys") == 61
    # n0 got n1's own key by the push of the same round; both trees agree.
    assert await mesh[0].get(500) is not None
    assert await mesh[1].root() == await mesh[0].root()
    assert certificate(500).fingerprint in {fp for fp, _ in mesh[1].raw.iter_records()}


async def test_a_node_only_a_little_behind_descends() -> None:
    config = dataclasses.replace(FAST, far_behind_differences=20)
    mesh = await _apart(config, common=100, extra=5)
    outcome = await mesh[1].replicator.sync_with(N0)
    assert outcome is not None and outcome.keys_pulled == 5
    assert mesh[1].replicator.bootstrap is not None
    assert mesh[1].replicator.bootstrap.pages_read == 0
