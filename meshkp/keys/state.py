"""Key states as the commit path moves them: a decoded KeyRecord, or one Prepared elsewhere.

`Prepared` is the one shape of "a record prepared in a worker process": its canonical bytes,
its index terms and its state flags, everything storing it needs, without the parsed packets
(which cost more to send between processes than to parse again). A key not stored yet is
written from its Prepared state as it is (a bootstrap pull, a bulk load); only a key that must
be joined with a stored copy is decoded. Peer records (replication/prepare.py) and loaded keys
(bulk/worker.py) are prepared into it. `Change` is one key moving from its stored state to a
new one; the commit path (commit.py) turns changes into store writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from meshkp.keys.record import KeyRecord
from meshkp.store.protocol import IndexKind, IndexTerm

# A Prepared state in pickle-cheap form: fingerprint, canonical bytes, terms as (kind value,
# term) pairs, and the flags. IndexKind is a str enum, so ("f", term) and
# (IndexKind.FINGERPRINT, term) are equal and hash alike: the store (layout.KIND_BYTES) and the
# caches take either, and the pairs become terms with no per-term conversion (unpickling an
# Enum member costs ~3 us, ~15 terms a key).
Wire = tuple[bytes, bytes, tuple[tuple[str, bytes], ...], bool, bool, bool]
_VALUE = {kind: kind.value for kind in IndexKind}  # a dict lookup beats the .value property


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~5 us more per record to build
class Prepared:
    """A key state with what storing it needs: its bytes, index terms and state flags."""

    fingerprint: bytes
    encoded: bytes  # KeyRecord.encode(): canonical, so equal states give equal bytes
    terms: frozenset[IndexTerm]  # the record's index terms (none while a tombstone stands)
    live: bool  # has a certificate and no tombstone: counted as a key
    deleted: bool
    conflict: bool
    # The record itself when prepared in this process (a cache of `encoded`, not compared).
    record: KeyRecord | None = field(default=None, compare=False)

    @classmethod
    def of(cls, record: KeyRecord, terms: frozenset[IndexTerm], encoded: bytes | None = None) -> Prepared:
        """`record` prepared, with its index terms (keys.ingest.record_terms) and, if the caller
        has them, its encoded bytes."""
        return cls(record.fingerprint, record.encode() if encoded is None else encoded, terms,
                   live=not record.deleted and record.certificate is not None,
                   deleted=record.deleted, conflict=record.conflict is not None, record=record)

    def key_record(self) -> KeyRecord:
        """The record itself (decoded, once, if it was prepared in another process)."""
        if self.record is None:
            self.record = KeyRecord.decode(self.encoded)
        return self.record

    def to_wire(self) -> Wire:
        """The form a worker process returns (the record itself stays behind)."""
        return (self.fingerprint, self.encoded, tuple((_VALUE[k], t) for k, t in self.terms),
                self.live, self.deleted, self.conflict)

    @classmethod
    def from_wire(cls, item: Wire) -> Prepared:
        fingerprint, encoded, terms, live, deleted, conflict = item
        return cls(fingerprint, encoded, cast(frozenset[IndexTerm], frozenset(terms)),
                   live, deleted, conflict)


KeyState = KeyRecord | Prepared


@dataclass(frozen=True, slots=True)
class Change:
    """One key moving from its stored state (`before`, None if absent) to `after`."""

    before: KeyRecord | None
    after: KeyState
    encoded: bytes  # after's canonical bytes, as stored

    @property
    def fingerprint(self) -> bytes:
        return self.after.fingerprint
