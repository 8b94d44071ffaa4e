"""What one `Store.write` does, shared by every store: validate everything, then apply in order.

A store hands `apply_writes` a `BatchSink` that collects into its atomic batch (a plyvel
WriteBatch, or a list of dict updates). Every element of every write is checked, and every
counter's new value computed, before the first call to the sink: a write with one bad element
leaves nothing behind, in either store.

Writes apply in sequence order, so two writes of the same fingerprint in one batch behave as
if written one after the other (index moves chain, counter deltas add up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol

from meshkp.errors import StoreUsageError
from meshkp.store import layout
from meshkp.store.protocol import BulkWrite, IndexKind, IndexTerm, RecordWrite


class CheckedWrites(tuple[RecordWrite, ...]):
    """Writes that passed `validate_writes` when they were staged for a group commit
    (meshkp/store/staged.py, the only maker): `apply_writes` does not check them a second
    time. Every element of every write is still checked once before anything is applied; the
    second pass cost a sequential upload ~10 µs on the writer thread (issue 14)."""

    __slots__ = ()


class BatchSink(Protocol):
    """Receives the validated effects of a batch, in order; applies nothing until the batch ends.

    `kind` is an IndexKind or its one-letter value, as the caller wrote it.
    """

    def set_record(self, fingerprint: bytes, record: bytes | None) -> None: ...

    def set_index(self, kind: IndexKind, term: bytes, fingerprint: bytes, present: bool) -> None: ...

    def add_index_entries(self, entries: Sequence[bytes]) -> None: ...  # encoded, checked entries

    def set_extra(self, key: bytes, value: bytes | None) -> None: ...

    def set_counter(self, name: str, value: int) -> None: ...


def apply_writes(
    writes: Sequence[RecordWrite], sink: BatchSink, current_counter: Callable[[str], int]
) -> None:
    """Validate all writes (unless staging did: CheckedWrites), then feed their effects to
    sink; StoreUsageError before any effect."""
    if type(writes) is not CheckedWrites:
        validate_writes(writes)
    counters = counter_values(writes, current_counter)
    for write in writes:
        fingerprint = write.fingerprint
        sink.set_record(fingerprint, write.record)
        for kind, term in write.old_terms - write.new_terms:
            sink.set_index(kind, term, fingerprint, False)
        # Re-put terms that stay: idempotent, and it heals an entry lost to an older bug.
        for kind, term in write.new_terms:
            sink.set_index(kind, term, fingerprint, True)
        for key, value in write.extra:
            sink.set_extra(key, value)
    for name, total in counters.items():
        sink.set_counter(name, total)


def counter_values(
    writes: Sequence[RecordWrite], current_counter: Callable[[str], int]
) -> dict[str, int]:
    """New values of the counters the writes touch (deltas summed); StoreUsageError on overflow."""
    deltas: dict[str, int] = {}
    for write in writes:
        for name, delta in write.counters.items():
            deltas[name] = deltas.get(name, 0) + delta
    return counter_totals(deltas, current_counter)


def counter_totals(deltas: Mapping[str, int], current_counter: Callable[[str], int]) -> dict[str, int]:
    """New values of counters moved by `deltas`; StoreUsageError on overflow."""
    values: dict[str, int] = {}
    for name, delta in deltas.items():
        if delta == 0:
            continue
        value = current_counter(name) + delta
        if not layout.COUNTER_MIN <= value <= layout.COUNTER_MAX:
            raise StoreUsageError(
                f"counter {name!r} would become {value}, outside signed 64-bit; nothing was written"
            )
        values[name] = value
    return values


def apply_bulk(bulk: BulkWrite, sink: BatchSink, current_counter: Callable[[str], int]) -> None:
    """Validate every row of a BulkWrite, then feed them to sink; StoreUsageError before any effect."""
    if not isinstance(bulk, BulkWrite):
        raise StoreUsageError(f"write_bulk() takes a BulkWrite, got {type(bulk).__name__}")
    for position, row in enumerate(bulk.records):
        problem = _bulk_record_problem(row)
        if problem is not None:
            raise StoreUsageError(f"bulk record #{position}: {problem}; nothing was written")
    index = bulk.index
    # A bootstrap writes ~15 entries a key, 1.5 million for 100,000 keys: checked by C loops
    # (map, all); the Python loop only runs to name the first bad one.
    if index and not (set(map(type, index)) == {bytes} and all(map(layout.is_index_entry, index))):
        for position, entry in enumerate(index):
            if not (type(entry) is bytes and layout.is_index_entry(entry)):
                raise StoreUsageError(
                    f"bulk index entry #{position} is not an encoded index entry (kind byte, u16 "
                    "term length, term, 16/20/32-byte fingerprint); nothing was written")
    problem = _counters_problem(bulk.counters) or _extra_problem(bulk.extra)
    if problem is not None:
        raise StoreUsageError(f"bulk write: {problem}; nothing was written")
    counters = counter_totals(bulk.counters, current_counter)
    for fingerprint, record in bulk.records:
        sink.set_record(fingerprint, record)
    if index:
        sink.add_index_entries(index)
    for key, value in bulk.extra:
        sink.set_extra(key, value)
    for name, total in counters.items():
        sink.set_counter(name, total)


def _bulk_record_problem(row: object) -> str | None:
    if not isinstance(row, tuple) or len(row) != 2:
        return f"must be a (fingerprint, record) pair, got {_describe(row)}"
    fingerprint, record = row
    if not isinstance(fingerprint, bytes) or len(fingerprint) not in layout.FINGERPRINT_LENGTHS:
        return f"fingerprint must be raw bytes of length 16, 20 or 32, got {_describe(fingerprint)}"
    if not isinstance(record, bytes) or not 1 <= len(record) <= layout.MAX_VALUE_BYTES:
        return f"record must be 1 to MAX_VALUE_BYTES={layout.MAX_VALUE_BYTES} bytes, got {_describe(record)}"
    return None


def validate_writes(writes: Sequence[RecordWrite]) -> None:
    """StoreUsageError naming the first bad element of any write; None if all are storable."""
    if not isinstance(writes, Sequence) or isinstance(writes, (bytes, str)):
        raise StoreUsageError(f"write() takes a sequence of RecordWrite, got {type(writes).__name__}")
    for position, write in enumerate(writes):
        if not isinstance(write, RecordWrite):
            raise StoreUsageError(
                f"write #{position} is a {type(write).__name__}, not a RecordWrite; nothing was written"
            )
        problem = _problem(write)
        if problem is not None:
            raise StoreUsageError(f"write #{position}: {problem}; nothing was written")


def _problem(write: RecordWrite) -> str | None:
    fingerprint = write.fingerprint
    if not isinstance(fingerprint, bytes) or len(fingerprint) not in layout.FINGERPRINT_LENGTHS:
        return (
            f"fingerprint must be raw bytes of length {sorted(layout.FINGERPRINT_LENGTHS)}, "
            f"got {_describe(fingerprint)} (hex text instead of bytes?)"
        )
    record = write.record
    if record is not None:
        if not isinstance(record, bytes):
            return f"record must be bytes or None, got {type(record).__name__}"
        if len(record) > layout.MAX_VALUE_BYTES:
            return f"record is {len(record)} bytes, over MAX_VALUE_BYTES={layout.MAX_VALUE_BYTES}"
    kinds, longest = layout.KIND_BYTES, layout.MAX_TERM_BYTES
    for field_name in ("old_terms", "new_terms"):
        terms = getattr(write, field_name)
        if not isinstance(terms, (frozenset, set, AbstractSet)):
            return f"{field_name} must be a frozenset of (IndexKind, bytes), got {type(terms).__name__}"
        for term in terms:
            # The write path checks ~10 terms per key: test the good shape inline, explain the
            # bad one in _term_problem.
            if (
                type(term) is tuple
                and len(term) == 2
                and term[0] in kinds
                and type(term[1]) is bytes
                and 0 < len(term[1]) <= longest
            ):
                continue
            problem = _term_problem(term)
            if problem is not None:
                return f"{field_name}: {problem}"
    if record is None and write.new_terms:
        return "a deleted record (record=None) cannot have new_terms; they would point at nothing"
    problem = _counters_problem(write.counters)
    if problem is not None:
        return problem
    return _extra_problem(write.extra)


def _term_problem(term: IndexTerm) -> str | None:
    if not isinstance(term, tuple) or len(term) != 2:
        return f"an index term must be a (IndexKind, bytes) pair, got {_describe(term)}"
    kind, value = term
    if kind not in layout.KIND_BYTES:
        return f"unknown index kind {kind!r}; known: {[k.value for k in IndexKind]}"
    if not isinstance(value, bytes):
        return f"index term of kind {kind!r} must be bytes, got {type(value).__name__}"
    if not 1 <= len(value) <= layout.MAX_TERM_BYTES:
        return (
            f"index term of kind {kind!r} is {len(value)} bytes; it must be 1 to "
            f"MAX_TERM_BYTES={layout.MAX_TERM_BYTES} (the indexer should skip longer terms)"
        )
    return None


def _counters_problem(counters: Mapping[str, int]) -> str | None:
    if not isinstance(counters, Mapping):
        return f"counters must map names to int deltas, got {type(counters).__name__}"
    for name, delta in counters.items():
        if not isinstance(name, str) or not name:
            return f"counter names must be non-empty str, got {name!r}"
        if len(name.encode("utf-8", "surrogatepass")) > layout.MAX_COUNTER_NAME_BYTES:
            return f"counter name {name[:20]!r}... is over {layout.MAX_COUNTER_NAME_BYTES} bytes"
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return f"counter name {name!r} is not valid UTF-8"
        if not isinstance(delta, int) or isinstance(delta, bool):
            return f"counter {name!r} delta must be an int, got {type(delta).__name__}"
        if not layout.COUNTER_MIN <= delta <= layout.COUNTER_MAX:
            return f"counter {name!r} delta {delta} is outside signed 64-bit"
    return None


def _extra_problem(extra: Sequence[tuple[bytes, bytes | None]]) -> str | None:
    if not isinstance(extra, Sequence) or isinstance(extra, (bytes, str)):
        return f"extra must be a sequence of (key, value) pairs, got {type(extra).__name__}"
    for item in extra:
        if not isinstance(item, tuple) or len(item) != 2:
            return f"extra items must be (bytes, bytes | None) pairs, got {_describe(item)}"
        key, value = item
        if not isinstance(key, bytes) or not 1 <= len(key) <= layout.MAX_EXTRA_KEY_BYTES:
            return (
                f"extra keys must be 1 to MAX_EXTRA_KEY_BYTES={layout.MAX_EXTRA_KEY_BYTES} bytes, "
                f"got {_describe(key)}"
            )
        if value is not None:
            if not isinstance(value, bytes):
                return f"extra value for {key[:32]!r} must be bytes or None, got {type(value).__name__}"
            if len(value) > layout.MAX_VALUE_BYTES:
                return f"extra value for {key[:32]!r} is over MAX_VALUE_BYTES={layout.MAX_VALUE_BYTES}"
    return None


def _describe(value: object) -> str:
    if isinstance(value, (bytes, str)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__
