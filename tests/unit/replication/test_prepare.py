"""Peer records prepared ahead of the commit (in a thread or in worker processes) give exactly the
store state of merging the records themselves; a bad record fails its whole batch."""

from __future__ import annotations

import dataclasses

import pytest

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.keys.pool import WorkerPool
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Prepared
from meshkp.net.identity import NodeIdentity
from meshkp.replication.prepare import prepare_batch, prepare_records
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind, Store
from tests.unit.keys.helpers import commit_states

from .helpers import LIMITS, certificate, record, with_vv


def _state(store: Store) -> tuple[object, ...]:
    """Everything a merge writes: records, index entries of the keys, counters, Merkle root."""
    fps = [fp for fp, _ in store.iter_records()]
    index = {fp: sorted(store.lookup(IndexKind.FINGERPRINT, fp, 10)) for fp in fps}
    words = {w: store.lookup(IndexKind.KEYWORD, w, 100) for w in (b"name", b"example.org", b"7")}
    return (list(store.iter_records()), index, words, store.counter("keys"),
            store.counter(TOMBSTONES_COUNTER), MerkleIndex().root_hex(store))


def _records() -> list[KeyRecord]:
    deleted = record(5).delete("n1", 9, "spam", "admin", NodeIdentity.generate("n1"))
    return [record(i) for i in range(5)] + [deleted, with_vv(record(7), n0=1, n2=4)]


def test_prepared_states_write_what_the_records_would() -> None:
    records = _records()
    by_record, by_prepared = MemoryStore(), MemoryStore()
    commit_states(by_record, records, MerkleIndex(), LIMITS)
    prepared = prepare_records([r.encode() for r in records], LIMITS, verify=True)
    result = commit_states(by_prepared, prepared, MerkleIndex(), LIMITS)
    assert result.changed == [True] * len(records)
    assert _state(by_prepared) == _state(by_record)
    assert by_prepared.counter("keys") == 6 and by_prepared.counter(TOMBSTONES_COUNTER) == 1


def test_a_prepared_state_of_a_stored_key_is_joined_not_overwritten() -> None:
    store, index = MemoryStore(), MerkleIndex()
    commit_states(store, [record(1).delete("n1", 5, "spam", "admin")], index, LIMITS)
    stale = prepare_records([record(1).encode()], LIMITS, verify=False)
    assert commit_states(store, stale, index, LIMITS).changed == [False]
    assert KeyRecord.decode(store.get(certificate(1).fingerprint)).deleted  # no resurrection
    # The same key twice in one batch: the second joins the first's state.
    twice = prepare_records([with_vv(record(2), a=1).encode(), with_vv(record(2), b=1).encode()],
                            LIMITS, verify=False)
    assert commit_states(store, twice, index, LIMITS).changed == [True, True]
    assert KeyRecord.decode(store.get(certificate(2).fingerprint)).vv.to_obj() == {"a": 1, "b": 1}


async def test_worker_processes_prepare_the_same_and_refuse_a_bad_batch() -> None:
    pool = WorkerPool(2)
    records = [r.encode() for r in _records()]
    try:
        in_workers = await prepare_batch(records, LIMITS, True, pool, min_batch=2)
        local = prepare_records(records, LIMITS, verify=True)
        assert [dataclasses.replace(p, record=None) for p in local] == in_workers
        forged = dataclasses.replace(record(3), fingerprint=certificate(4).fingerprint).encode()
        with pytest.raises(InvalidPeerRecord, match="filed under"):
            await prepare_batch([*records, forged], LIMITS, False, pool, min_batch=2)
        small = await prepare_batch(records[:1], LIMITS, False, pool, min_batch=2)  # here
        assert isinstance(small[0], Prepared) and small[0].record is not None
    finally:
        await pool.close()
        await pool.close()  # idempotent
