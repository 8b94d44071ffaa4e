"""Preparing peer records for the merge: validation, canonical bytes and index terms, in parallel.

Everything a received record costs before the store is involved is pure: decoding, the checks
of validate.py, re-encoding, and its index terms (the dearest part: key IDs, SKS digest, user ID
keywords). `prepare_records` does it for a list of records and returns `Prepared` states, so the
store's single writer only joins, updates the Merkle tree and writes; a record whose key the
store does not hold yet (every record of a bootstrap) is then written without being parsed again.

Large batches (anti-entropy pulls) are split over a process pool (`PreparePool`), because the
GIL lets one process use one core: with a pool, a bootstrapping node checks records on every
core while its writer thread stores the previous batch. Small batches (pushes) are prepared
in-process: a round trip to a worker costs more than they do.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import cast

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.ingest import record_terms
from meshkp.limits import Limits
from meshkp.record import KeyRecord
from meshkp.replication.validate import parse_peer_record
from meshkp.store.protocol import IndexKind, IndexTerm

log = logging.getLogger(__name__)

# What a worker returns per record: fingerprint, canonical bytes, terms as (kind value, term)
# pairs, and the flags. IndexKind is a str enum, so ("f", term) and (IndexKind.FINGERPRINT,
# term) are equal and hash alike: the store (layout.KIND_BYTES) and the caches take either,
# and the pairs become terms with no per-term conversion (which cost ~25 us per key).
_Wire = tuple[bytes, bytes, tuple[tuple[str, bytes], ...], bool, bool, bool]
_VALUE = {kind: kind.value for kind in IndexKind}  # a dict lookup beats the .value property


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~5 us more per record to build
class Prepared:
    """A validated peer record with what storing it needs: its bytes, terms and state flags."""

    fingerprint: bytes
    encoded: bytes  # KeyRecord.encode(): canonical, so equal states give equal bytes
    terms: frozenset[IndexTerm]  # record_terms of this state (none while a tombstone stands)
    live: bool  # has a certificate and no tombstone: counted as a key
    deleted: bool
    conflict: bool
    record: KeyRecord | None = None  # kept when prepared in this process

    def key_record(self) -> KeyRecord:
        """The record itself (decoded again if it was prepared in a worker process)."""
        return self.record if self.record is not None else KeyRecord.decode(self.encoded)


def prepare(data: bytes, limits: Limits, verify: bool) -> Prepared:
    """One record checked (validate.py) and prepared; InvalidPeerRecord if it fails a check."""
    record = parse_peer_record(data, limits, verify)
    try:
        terms = record_terms(record, limits)
    # Index data comes from a peer's packets: a parse failure the structural checks let through
    # must reject the record, never escape as a crash.
    except Exception as exc:
        raise InvalidPeerRecord(f"index terms of the record cannot be computed: {exc!r}") from None
    return Prepared(record.fingerprint, record.encode(), terms,
                    live=not record.deleted and record.certificate is not None,
                    deleted=record.deleted, conflict=record.conflict is not None, record=record)


def prepare_records(records: Sequence[bytes], limits: Limits, verify: bool) -> list[Prepared]:
    """Every record prepared, in order; InvalidPeerRecord for the batch if any one fails."""
    return [prepare(data, limits, verify) for data in records]


def _prepare_in_worker(
    records: Sequence[bytes], limits: Limits, verify: bool
) -> list[_Wire] | str:
    """Worker-process entry: the prepared records in pickle-cheap form, or the error text."""
    try:
        done = prepare_records(records, limits, verify)
    except InvalidPeerRecord as exc:
        return str(exc)
    return [(p.fingerprint, p.encoded, tuple((_VALUE[k], t) for k, t in p.terms),
             p.live, p.deleted, p.conflict) for p in done]


def _from_wire(item: _Wire) -> Prepared:
    fingerprint, encoded, terms, live, deleted, conflict = item
    return Prepared(fingerprint, encoded, cast(frozenset[IndexTerm], frozenset(terms)),
                    live, deleted, conflict)


class PreparePool:
    """A lazily started process pool for `prepare_records` of large batches (one per node).

    Workers are spawned, not forked: the node has threads (store, executor) whose locks a
    forked child would inherit held. They start on the first large batch and are shut down
    by `close()`, so a node that is not bootstrapping keeps no idle processes.
    """

    def __init__(self, workers: int, min_batch: int) -> None:
        self.workers = workers
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None

    @staticmethod
    def default_workers() -> int:
        """One worker per core this process may run on."""
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    async def prepare(self, records: Sequence[bytes], limits: Limits, verify: bool) -> list[Prepared]:
        """prepare_records, split over the workers when the batch is large enough."""
        loop = asyncio.get_running_loop()
        if self.workers < 1 or len(records) < self.min_batch:
            return await loop.run_in_executor(None, prepare_records, records, limits, verify)
        pool = self._started()
        size = -(-len(records) // self.workers)
        chunks = [records[i:i + size] for i in range(0, len(records), size)]
        try:
            answers = await asyncio.gather(*(
                loop.run_in_executor(pool, _prepare_in_worker, chunk, limits, verify)
                for chunk in chunks
            ))
        except BrokenProcessPool as exc:  # a worker died (OOM kill...): fall back to threads
            log.warning("event=prepare_pool_broken error=%s action=in_process", exc)
            await self.close()
            return await loop.run_in_executor(None, prepare_records, records, limits, verify)
        prepared: list[Prepared] = []
        for answer in answers:
            if isinstance(answer, str):
                raise InvalidPeerRecord(answer)
            prepared.extend(_from_wire(item) for item in answer)
        return prepared

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            log.info("event=prepare_pool_started workers=%d", self.workers)
        return self._pool

    async def close(self) -> None:
        """Stop the workers (idempotent); the next large batch starts them again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
