"""Preparing peer records for the commit: validation, canonical bytes and index terms, in parallel.

Everything a received record of a key we do not hold costs before the store is involved is
pure: decoding, the checks of validate.py, re-encoding, and its index terms (the dearest part:
key IDs, SKS digest, user ID keywords). `prepare_records` turns records into `Prepared` states
(meshkp/keys/state.py), so the store's single writer only updates the Merkle tree and writes,
without parsing them again (every record of a bootstrap is such a one).

Large batches (anti-entropy pulls) are split over the node's worker pool
(meshkp/keys/pool.py), because the GIL lets one process use one core: a bootstrapping node
checks records on every core while its writer thread stores the previous batch. Small batches
(pushes) are prepared in a thread: a round trip to a worker costs more than they do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.ingest import record_terms
from meshkp.keys.pool import WorkerPool
from meshkp.keys.record import RecordFields
from meshkp.keys.state import Prepared, Wire
from meshkp.limits import Limits
from meshkp.replication.validate import parse_peer_record


def prepare(data: bytes, limits: Limits, verify: bool, fields: RecordFields | None = None) -> Prepared:
    """One record checked (validate.py) and prepared; InvalidPeerRecord if it fails a check."""
    record = parse_peer_record(data, limits, verify, fields)
    try:
        terms = record_terms(record, limits)
    # Index data comes from a peer's packets: a parse failure the structural checks let through
    # must reject the record, never escape as a crash.
    except Exception as exc:
        raise InvalidPeerRecord(f"index terms of the record cannot be computed: {exc!r}") from None
    return Prepared.of(record, terms)


def prepare_records(records: Sequence[bytes], limits: Limits, verify: bool) -> list[Prepared]:
    """Every record prepared, in order; InvalidPeerRecord for the batch if any one fails."""
    return [prepare(data, limits, verify) for data in records]


def _prepare_in_worker(records: Sequence[bytes], limits: Limits, verify: bool) -> list[Wire] | str:
    """Worker-process entry: the prepared records in pickle-cheap form, or the error text."""
    try:
        return [p.to_wire() for p in prepare_records(records, limits, verify)]
    except InvalidPeerRecord as exc:
        return str(exc)


async def prepare_batch(
    records: Sequence[bytes],
    limits: Limits,
    verify: bool,
    pool: WorkerPool | None,
    min_batch: int,
    fields: Sequence[RecordFields] | None = None,
) -> list[Prepared]:
    """prepare_records, split over the pool's workers when the batch has `min_batch` records.

    `fields` are the records' peer_fields if the caller unpacked them: a batch prepared in a
    thread here uses them; worker processes get the bytes (cheaper to send) and unpack those.
    """
    if pool is None or not pool.enabled or len(records) < min_batch:
        unpacked = fields if fields is not None else [None] * len(records)

        def here() -> list[Prepared]:
            return [prepare(data, limits, verify, f) for data, f in zip(records, unpacked, strict=True)]

        return await asyncio.get_running_loop().run_in_executor(None, here)
    size = -(-len(records) // pool.workers)
    chunks = [records[i:i + size] for i in range(0, len(records), size)]
    answers = await pool.map(_prepare_in_worker, [(chunk, limits, verify) for chunk in chunks])
    prepared: list[Prepared] = []
    for answer in answers:
        if isinstance(answer, str):
            raise InvalidPeerRecord(answer)
        prepared.extend(Prepared.from_wire(item) for item in answer)
    return prepared
