"""Merging record states into the store: the one write path of replication and deletes.

`merge_into_store` runs inside AsyncStore.run_exclusive (read-merge-write with no other write
in between). Per record it merges the stored state with the received one by the CRDT join
(KeyRecord.merge, with the third-party signature cap re-applied as ingest does, since the cap
commutes with merge), and writes only if the state changed: the record, its index terms
(none while a tombstone stands), the key/tombstone counters, the conflict marker and the
Merkle leaf, all in one batch. It reports which records were new, so that only those are
forwarded (forward-while-new).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshkp.keys.ingest import KEYS_COUNTER, record_terms
from meshkp.limits import Limits
from meshkp.openpgp.normalise import merge as merge_certificates
from meshkp.record import KeyRecord
from meshkp.replication.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.store.protocol import RecordWrite, Store

log = logging.getLogger(__name__)

# Extra-namespace marker of a record in conflict (add concurrent with delete), so that
# GET /cluster/conflicts lists them without scanning every record.
CONFLICT_PREFIX = b"cf"


@dataclass(slots=True)
class MergeResult:
    """What one merge call did: per input, whether the state changed; the new states."""

    changed: list[bool] = field(default_factory=list)
    records: dict[bytes, KeyRecord] = field(default_factory=dict)  # changed fps -> new state
    encoded: dict[bytes, bytes] = field(default_factory=dict)  # changed fps -> new bytes
    writes: list[RecordWrite] = field(default_factory=list)


def join(stored: KeyRecord | None, incoming: KeyRecord, limits: Limits) -> KeyRecord:
    """The CRDT join of two states of one key, with the signature cap re-applied."""
    if stored is None:
        return incoming
    merged = stored.merge(incoming)
    mine, theirs = stored.certificate, incoming.certificate
    if mine is not None and theirs is not None and mine != theirs:
        merged = dataclasses.replace(merged, certificate=merge_certificates(mine, theirs, limits))
    return merged


def _live(record: KeyRecord | None) -> bool:
    return record is not None and not record.deleted and record.certificate is not None


def record_write(
    before: KeyRecord | None, after: KeyRecord, encoded: bytes, limits: Limits
) -> RecordWrite:
    """The RecordWrite moving one key from `before` to `after` (without the Merkle update)."""
    counters: dict[str, int] = {}
    keys_delta = int(_live(after)) - int(_live(before))
    if keys_delta:
        counters[KEYS_COUNTER] = keys_delta
    tomb_delta = int(after.deleted) - int(before is not None and before.deleted)
    if tomb_delta:
        counters[TOMBSTONES_COUNTER] = tomb_delta
    extra: tuple[tuple[bytes, bytes | None], ...] = ()
    was_conflict = before is not None and before.conflict is not None
    is_conflict = after.conflict is not None
    if was_conflict != is_conflict:
        extra = ((CONFLICT_PREFIX + after.fingerprint, b"1" if is_conflict else None),)
    return RecordWrite(
        fingerprint=after.fingerprint,
        record=encoded,
        old_terms=record_terms(before, limits),
        new_terms=record_terms(after, limits),
        counters=counters,
        extra=extra,
    )


def merge_into_store(
    store: Store,
    incoming: Sequence[KeyRecord],
    index: MerkleIndex,
    limits: Limits,
    sync: bool = True,
) -> MergeResult:
    """Join each incoming state into the store; write what changed as one batch."""
    result = MergeResult()
    current: dict[bytes, tuple[KeyRecord | None, bytes | None]] = {}
    original: dict[bytes, KeyRecord | None] = {}
    for record in incoming:
        fingerprint = record.fingerprint
        if fingerprint not in current:
            data = store.get(fingerprint)
            stored = KeyRecord.decode(data) if data is not None else None
            current[fingerprint] = (stored, data)
            original[fingerprint] = stored
        stored, data = current[fingerprint]
        merged = join(stored, record, limits)
        encoded = merged.encode()
        if encoded == data:
            result.changed.append(False)
            continue
        result.changed.append(True)
        current[fingerprint] = (merged, encoded)
        result.records[fingerprint] = merged
        result.encoded[fingerprint] = encoded
    if not result.records:
        return result
    writes = [
        record_write(original[fp], merged, result.encoded[fp], limits)
        for fp, merged in result.records.items()
    ]
    result.writes = index.attach(store, writes)
    store.write(result.writes, sync=sync)
    return result
