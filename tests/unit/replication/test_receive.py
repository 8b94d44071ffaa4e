"""Receiving peer records: each is unpacked and decoded once, whatever path it takes (held here,
new here and prepared in the worker pool, or joined with the stored state)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import pytest

from crdt.vclock import VersionVector
from meshkp.keys.commit import Committer
from meshkp.keys.pool import WorkerPool
from meshkp.keys.record import KeyRecord
from meshkp.replication.messages import ACK_CHANGED, ACK_UNCHANGED, PushAck, PushBatch
from meshkp.replication.peers import StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

from .helpers import FAST, LIMITS, record, with_vv


class InlinePool(WorkerPool):
    """A worker pool whose "workers" are threads of this process, so decodes can be counted."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.jobs: list[int] = []

    async def map(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        self.jobs.extend(len(args[0]) for args in calls)
        return list(await asyncio.gather(*(asyncio.to_thread(fn, *args) for args in calls)))


class _NoChannel:
    async def request(self, *_args: object, **_kwargs: object) -> object:
        raise AssertionError("no peers")


def _replicator(pool: WorkerPool | None) -> Replicator:
    config = dataclasses.replace(FAST, prepare_min_batch=2)
    return Replicator(AsyncStore(MemoryStore()), "n0", Committer(LIMITS), config, StaticPeers(),
                      _NoChannel(), pool=pool)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[bytes], Counter[str]]:
    """(msgpack unpacks by data, record decodes by the version vector's only node)."""
    unpacks: Counter[bytes] = Counter()
    decodes: Counter[str] = Counter()
    unpack, from_fields = msgpack.unpackb, KeyRecord.from_fields.__func__  # type: ignore[attr-defined]

    def counting_unpack(data: bytes, *args: Any, **kwargs: Any) -> Any:
        unpacks[bytes(data)] += 1
        return unpack(data, *args, **kwargs)

    def counting_decode(cls: type[KeyRecord], fields: list[Any]) -> KeyRecord:
        decodes[",".join(sorted(fields[3]))] += 1
        return from_fields(cls, fields)

    monkeypatch.setattr(msgpack, "unpackb", counting_unpack)
    monkeypatch.setattr(KeyRecord, "from_fields", classmethod(counting_decode))
    return unpacks, decodes


async def test_each_record_is_decoded_once_also_with_worker_processes(counted) -> None:
    _, decodes = counted
    pool = InlinePool()
    replicator = _replicator(pool)
    try:
        await replicator._merge([record(i, "n0") for i in range(2)])  # held here, by n0
        decodes.clear()
        # Keys 0 and 1 in another state (joined with the stored one), keys 2-4 new here.
        pushed = [with_vv(record(i), p=1).encode() for i in range(5)]
        ack = await replicator.handle("p", PushBatch(tuple(pushed), forward=False))
        assert ack.statuses == (ACK_CHANGED,) * 5
        assert pool.jobs and sum(pool.jobs) == 3  # only the new keys went to the workers
        # Each peer record decoded once (in a worker or here), and the two stored ones once.
        assert decodes == Counter({"p": 5, "n0": 2})
    finally:
        await replicator.stop()
        await replicator.store.close()


async def test_each_record_is_unpacked_once_here(counted) -> None:
    unpacks, decodes = counted
    replicator = _replicator(None)
    try:
        held = record(2).encode()
        await replicator.handle("p", PushBatch((held, record(0).encode()), forward=False))
        unpacks.clear()
        decodes.clear()
        new, joined = record(1).encode(), with_vv(record(0), p=1).encode()
        ack = await replicator.handle("p", PushBatch((held, new, joined), forward=False))
        assert ack.statuses == (ACK_UNCHANGED, ACK_CHANGED, ACK_CHANGED)
        assert unpacks[held] == unpacks[new] == unpacks[joined] == 1
        assert decodes["p"] == 1 and decodes["n0"] == 2  # joined; new; and the stored key 0
    finally:
        await replicator.stop()
        await replicator.store.close()


async def test_a_small_push_to_an_idle_writer_is_checked_and_joined_in_its_commit_job(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # It used to cross threads twice (a thread to check it, then the writer to commit it).
    replicator = _replicator(None)
    hops: list[object] = []
    loop = asyncio.get_running_loop()
    run_in_executor = loop.run_in_executor

    def counting(executor: Any, fn: Callable[..., Any], *args: Any) -> Any:
        hops.append(fn)
        return run_in_executor(executor, fn, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    store = replicator.store
    try:
        await replicator._merge([record(0, "n0")])
        jobs = store.stats.jobs
        new, joined, held = record(1).encode(), with_vv(record(0), p=1).encode(), record(1).encode()
        ack = await replicator.handle("p", PushBatch((new, joined), forward=True))
        assert ack.statuses == (ACK_CHANGED, ACK_CHANGED)
        assert store.stats.jobs == jobs + 1 and hops == []
        stored = store.store.get(record(0).fingerprint)
        assert stored is not None and KeyRecord.decode(stored).vv == VersionVector({"n0": 1, "p": 1})
        ack = await replicator.handle("p", PushBatch((held,), forward=True))
        assert ack.statuses == (ACK_UNCHANGED,)
    finally:
        await replicator.stop()
        await store.close()


async def test_a_bad_record_in_a_small_push_stores_nothing_of_its_batch() -> None:
    replicator = _replicator(None)
    store = replicator.store
    try:
        batch = (record(1).encode(), b"\x93not a record")
        reply = await replicator.handle("p", PushBatch(batch, forward=True))
        assert not isinstance(reply, PushAck)
        assert store.store.get(record(1).fingerprint) is None
        assert replicator.counters.records_rejected == 1
    finally:
        await replicator.stop()
        await store.close()
