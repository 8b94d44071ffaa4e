"""Merging record states into the store: the one write path of replication and deletes.

`merge_into_store` runs inside AsyncStore.run_exclusive (read-merge-write with no other write
in between). Per record it merges the stored state with the received one by the CRDT join
(KeyRecord.merge, with the third-party signature cap re-applied as ingest does, since the cap
commutes with merge), and writes only if the state changed: the record, its index terms
(none while a tombstone stands), the key/tombstone counters, the conflict marker and the
Merkle leaf, all in one batch. It reports which records were new, so that only those are
forwarded (forward-while-new). Records from peers arrive as `Prepared` states (prepare.py):
a key not stored yet is then written without parsing it again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.ingest import KEYS_COUNTER, record_terms
from meshkp.limits import Limits
from meshkp.openpgp.normalise import merge as merge_certificates
from meshkp.record import KeyRecord
from meshkp.replication.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.replication.prepare import Prepared
from meshkp.store.protocol import IndexTerm, RecordWrite, Store

log = logging.getLogger(__name__)

# Extra-namespace marker of a record in conflict (add concurrent with delete), so that
# GET /cluster/conflicts lists them without scanning every record.
CONFLICT_PREFIX = b"cf"


@dataclass(slots=True)
class MergeResult:
    """What one merge call did: per input, whether the state changed; the new states."""

    changed: list[bool] = field(default_factory=list)
    # changed fps -> new state (a Prepared one for a key stored as received: not decoded here)
    records: dict[bytes, KeyRecord | Prepared] = field(default_factory=dict)
    encoded: dict[bytes, bytes] = field(default_factory=dict)  # changed fps -> new bytes
    writes: list[RecordWrite] = field(default_factory=list)


def join(stored: KeyRecord | None, incoming: KeyRecord, limits: Limits) -> KeyRecord:
    """The CRDT join of two states of one key, with the signature cap re-applied.

    InvalidPeerRecord if the two hold different primary key packets (nothing to join).
    """
    if stored is None:
        return incoming
    mine, theirs = stored.certificate, incoming.certificate
    if mine is not None and theirs is not None and mine.primary.packet != theirs.primary.packet:
        # A v3 fingerprint (RFC 4880 §12.2: MD5 of n and e) does not cover the creation time,
        # so two different primary packets can share one: no union exists, refuse the record.
        raise InvalidPeerRecord(
            f"record {incoming.fingerprint.hex()} has another primary key packet than ours"
        )
    merged = stored.merge(incoming)
    if mine is not None and theirs is not None and mine != theirs:
        merged = dataclasses.replace(merged, certificate=merge_certificates(mine, theirs, limits))
    return merged


def _facts(
    state: KeyRecord | Prepared | None, limits: Limits
) -> tuple[frozenset[IndexTerm], bool, bool, bool]:
    """(index terms, live, deleted, in conflict) of a state; a Prepared one has them ready."""
    if state is None:
        return frozenset(), False, False, False
    if isinstance(state, Prepared):
        return state.terms, state.live, state.deleted, state.conflict
    live = not state.deleted and state.certificate is not None
    return record_terms(state, limits), live, state.deleted, state.conflict is not None


def record_write(
    before: KeyRecord | None, after: KeyRecord | Prepared, encoded: bytes, limits: Limits
) -> RecordWrite:
    """The RecordWrite moving one key from `before` to `after` (without the Merkle update)."""
    old_terms, was_live, was_deleted, was_conflict = _facts(before, limits)
    new_terms, is_live, is_deleted, is_conflict = _facts(after, limits)
    counters: dict[str, int] = {}
    if is_live != was_live:
        counters[KEYS_COUNTER] = int(is_live) - int(was_live)
    if is_deleted != was_deleted:
        counters[TOMBSTONES_COUNTER] = int(is_deleted) - int(was_deleted)
    extra: tuple[tuple[bytes, bytes | None], ...] = ()
    if was_conflict != is_conflict:
        extra = ((CONFLICT_PREFIX + after.fingerprint, b"1" if is_conflict else None),)
    return RecordWrite(
        fingerprint=after.fingerprint,
        record=encoded,
        old_terms=old_terms,
        new_terms=new_terms,
        counters=counters,
        extra=extra,
    )


def merge_into_store(
    store: Store,
    incoming: Sequence[KeyRecord | Prepared],
    index: MerkleIndex,
    limits: Limits,
    sync: bool = True,
) -> MergeResult:
    """Join each incoming state into the store; write what changed as one batch.

    A Prepared state of a key the store does not hold is written as it is (its bytes and
    terms were computed when it was prepared); any other is joined with the stored state.
    """
    result = MergeResult()
    current: dict[bytes, tuple[KeyRecord | Prepared | None, bytes | None]] = {}
    original: dict[bytes, KeyRecord | None] = {}
    for item in incoming:
        fingerprint = item.fingerprint
        if fingerprint not in current:
            data = store.get(fingerprint)
            stored = KeyRecord.decode(data) if data is not None else None
            current[fingerprint] = (stored, data)
            original[fingerprint] = stored
        state, data = current[fingerprint]
        merged: KeyRecord | Prepared
        if state is None and isinstance(item, Prepared):
            merged, encoded = item, item.encoded
        else:
            base = state.key_record() if isinstance(state, Prepared) else state
            record = item.key_record() if isinstance(item, Prepared) else item
            merged = join(base, record, limits)
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
