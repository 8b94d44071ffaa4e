"""Replication wire messages: typed dataclasses with a stable TYPE code and validated maps.

Each message travels in one sealed TCP frame (meshkp/net/tcp.py): version byte, TYPE byte,
msgpack map of `to_map()`. `decode_message` checks shape and every bound before anything is
built and raises WireError, which the server counts and drops: a peer's bytes never reach
the store unchecked. Records themselves are validated later, in validate.py.
Type codes 40-59 are replication's (SWIM uses 1-10, the control plane 60-69).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from meshkp.errors import WireError
from meshkp.net.message import Message as Message  # re-exported: the protocol's base
from meshkp.net.message import decode_typed
from meshkp.net.wire import TCP_FRAME_BYTES
from meshkp.replication.load_wire import LoadReport
from meshkp.store.layout import FINGERPRINT_LENGTHS  # 16 (v3), 20 (v4), 32 (v6) bytes

# --- Bounds, each with what it protects against. ----------------------------------------------
# Records in one push or fetch reply: bounds per-batch work and the ack list; honest senders
# use ReplicationConfig.push_batch_records / sync_batch_records (<= this).
MAX_BATCH_RECORDS = 4096
# Bytes of one batch's records together: a frame is at most TCP_FRAME_BYTES anyway; this is
# checked again so that a future larger frame bound cannot silently grow batches.
MAX_BATCH_BYTES = TCP_FRAME_BYTES
# Fingerprints in one fetch request.
MAX_FETCH_IDS = 8192
# A diff message (crdt.merkle_diff hard limit is 2 x 1 MiB by default).
MAX_DIFF_BYTES = 4 * 1024 * 1024
# Free text a peer sends back (an error reason).
MAX_REASON_CHARS = 512
# Rows of one snapshot page: ~4 MiB of index entries (~35 bytes each) fit in 131,072.
MAX_SNAPSHOT_ROWS = 131_072
# A snapshot cursor: a fingerprint, or an encoded index entry (kind, u16 length, term, fpr).
MAX_SNAPSHOT_CURSOR = 3 + 4096 + 32




def _list(body: Mapping[str, Any], key: str, limit: int) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise WireError(f"field {key!r} must be a list, got {type(value).__name__}")
    if len(value) > limit:
        raise WireError(f"field {key!r} has {len(value)} items, bound is {limit}")
    return value


def _records(body: Mapping[str, Any], key: str = "recs") -> tuple[bytes, ...]:
    items = _list(body, key, MAX_BATCH_RECORDS)
    total = 0
    for item in items:
        if not isinstance(item, bytes) or not item:
            raise WireError(f"field {key!r} must hold non-empty bin records")
        total += len(item)
    if total > MAX_BATCH_BYTES:
        raise WireError(f"batch holds {total} record bytes, bound is {MAX_BATCH_BYTES}")
    return tuple(items)


def _fingerprints(body: Mapping[str, Any], key: str, limit: int) -> tuple[bytes, ...]:
    items = _list(body, key, limit)
    for item in items:
        if not isinstance(item, bytes) or len(item) not in FINGERPRINT_LENGTHS:
            raise WireError(f"field {key!r} must hold 16/20/32-byte fingerprints")
    return tuple(items)


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise WireError(f"field {key!r} must be a bool")
    return value


def _blob(body: Mapping[str, Any], key: str, limit: int) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes) or len(value) > limit:
        raise WireError(f"field {key!r} must be bin of at most {limit} bytes")
    return value


@dataclass(frozen=True, slots=True)
class PushBatch(Message):
    """Encoded record states of new writes (`forward`) or of an anti-entropy round (not).

    `relay`: the receiver pushes on whatever is new to it (forward-while-new). The sender
    clears it when it pushed the batch to every live peer it knows: relaying would then only
    send each peer the same records again (measured: 2.7x the write-path CPU of a 10-node
    mesh on one host). `origin_ts` is the wall time (Unix seconds) at which the oldest change
    in the batch was accepted by its first node, carried along forwards: the receiver
    measures replication lag with it. 0 when unknown (anti-entropy).
    """

    TYPE: ClassVar[int] = 40
    records: tuple[bytes, ...]
    forward: bool = True
    origin_ts: float = 0.0
    relay: bool = True

    def to_map(self) -> dict[str, Any]:
        return {"recs": list(self.records), "fwd": self.forward, "ts": self.origin_ts,
                "rly": self.relay}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> PushBatch:
        ts = body.get("ts", 0.0)
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not 0 <= ts < 2**40:
            raise WireError("field 'ts' must be a Unix time")
        relay = body.get("rly", True)  # absent: a sender that always asked to relay
        if not isinstance(relay, bool):
            raise WireError("field 'rly' must be a bool")
        return cls(_records(body), _bool(body, "fwd"), float(ts), relay)


# PushAck status codes, one per record of the batch.
ACK_UNCHANGED = 0  # the receiver already had this state (or more)
ACK_CHANGED = 1  # the record changed the receiver's state (it was new there)
ACK_REJECTED = 2  # refused by validation; nothing stored
ACK_CODES = frozenset({ACK_UNCHANGED, ACK_CHANGED, ACK_REJECTED})


@dataclass(frozen=True, slots=True)
class PushAck(Message):
    """The receiver merged the batch (durably); per record, whether its state changed."""

    TYPE: ClassVar[int] = 41
    statuses: tuple[int, ...]

    def to_map(self) -> dict[str, Any]:
        return {"st": list(self.statuses)}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> PushAck:
        items = _list(body, "st", MAX_BATCH_RECORDS)
        if any(not isinstance(s, int) or isinstance(s, bool) or s not in ACK_CODES for s in items):
            raise WireError("push ack statuses must be 0, 1 or 2")
        return cls(tuple(items))


@dataclass(frozen=True, slots=True)
class DiffQuery(Message):
    """One crdt.merkle_diff query (initiator -> responder), opaque here."""

    TYPE: ClassVar[int] = 42
    data: bytes

    def to_map(self) -> dict[str, Any]:
        return {"q": self.data}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> DiffQuery:
        return cls(_blob(body, "q", MAX_DIFF_BYTES))


@dataclass(frozen=True, slots=True)
class DiffAnswer(Message):
    """One crdt.merkle_diff answer (responder -> initiator), opaque here."""

    TYPE: ClassVar[int] = 43
    data: bytes

    def to_map(self) -> dict[str, Any]:
        return {"a": self.data}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> DiffAnswer:
        return cls(_blob(body, "a", MAX_DIFF_BYTES))


@dataclass(frozen=True, slots=True)
class Fetch(Message):
    """Ask for the current records of these fingerprints."""

    TYPE: ClassVar[int] = 44
    fingerprints: tuple[bytes, ...]

    def to_map(self) -> dict[str, Any]:
        return {"ids": list(self.fingerprints)}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> Fetch:
        return cls(_fingerprints(body, "ids", MAX_FETCH_IDS))


@dataclass(frozen=True, slots=True)
class RecordBatch(Message):
    """Answer to Fetch: records found; `rest`: asked-for ids left out by the byte budget."""

    TYPE: ClassVar[int] = 45
    records: tuple[bytes, ...]
    rest: tuple[bytes, ...] = ()

    def to_map(self) -> dict[str, Any]:
        return {"recs": list(self.records), "rest": list(self.rest)}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> RecordBatch:
        return cls(_records(body), _fingerprints(body, "rest", MAX_FETCH_IDS))


@dataclass(frozen=True, slots=True)
class SyncError(Message):
    """The responder refused a request; `reason` says why (logged, counted by the requester)."""

    TYPE: ClassVar[int] = 46
    reason: str

    def to_map(self) -> dict[str, Any]:
        return {"reason": self.reason[:MAX_REASON_CHARS]}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> SyncError:
        reason = body.get("reason")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise WireError("sync error reason must be a short string")
        return cls(reason)


@dataclass(frozen=True, slots=True)
class Scan(Message):
    """Ask for records in fingerprint order after `after` (b"": from the first), at most `limit`.

    A node with an empty tree bootstraps this way: a diff against nothing would only send
    every id and digest before the records themselves.
    """

    TYPE: ClassVar[int] = 47
    after: bytes
    limit: int

    def to_map(self) -> dict[str, Any]:
        return {"after": self.after, "n": self.limit}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> Scan:
        limit = body.get("n")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_BATCH_RECORDS:
            raise WireError(f"field 'n' must be 1..{MAX_BATCH_RECORDS}")
        return cls(_cursor(body, "after"), limit)


@dataclass(frozen=True, slots=True)
class ScanBatch(Message):
    """Answer to Scan: the next records; `next`: the cursor to scan on from (b"": the end);
    `total`: records the responder holds (progress of a bootstrap)."""

    TYPE: ClassVar[int] = 48
    records: tuple[bytes, ...]
    next: bytes
    total: int

    def to_map(self) -> dict[str, Any]:
        return {"recs": list(self.records), "next": self.next, "total": self.total}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> ScanBatch:
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or not 0 <= total < 2**40:
            raise WireError("field 'total' must be a record count")
        return cls(_records(body), _cursor(body, "next"), total)


def _cursor(body: Mapping[str, Any], key: str) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes) or (value and len(value) not in FINGERPRINT_LENGTHS):
        raise WireError(f"field {key!r} must be empty or a 16/20/32-byte fingerprint")
    return value


# What a snapshot copies: the records, then the index entries (meshkp/replication/snapshot.py).
SNAPSHOT_RECORDS = "r"
SNAPSHOT_INDEX = "i"
SNAPSHOT_PARTS = (SNAPSHOT_RECORDS, SNAPSHOT_INDEX)


def _part(body: Mapping[str, Any]) -> str:
    value = body.get("part")
    if value not in SNAPSHOT_PARTS:
        raise WireError(f"field 'part' must be one of {SNAPSHOT_PARTS}")
    return str(value)


def _snapshot_cursor(body: Mapping[str, Any], key: str) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes) or len(value) > MAX_SNAPSHOT_CURSOR:
        raise WireError(f"field {key!r} must be bin of at most {MAX_SNAPSHOT_CURSOR} bytes")
    return value


@dataclass(frozen=True, slots=True)
class SnapshotRead(Message):
    """Ask for the next page of the peer's stored rows of `part`, in key order after `after`
    (b"": from the first): a new node copying a peer's store (snapshot bootstrap)."""

    TYPE: ClassVar[int] = 50
    part: str
    after: bytes

    def to_map(self) -> dict[str, Any]:
        return {"part": self.part, "after": self.after}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> SnapshotRead:
        return cls(_part(body), _snapshot_cursor(body, "after"))


@dataclass(frozen=True, slots=True)
class SnapshotPage(Message):
    """Answer to SnapshotRead: `rows` (encoded records, or encoded index entries) in key
    order; `next`: the cursor to read on from (b"": the part is done); `total`: records the
    responder holds (progress)."""

    TYPE: ClassVar[int] = 51
    part: str
    rows: tuple[bytes, ...]
    next: bytes
    total: int

    def to_map(self) -> dict[str, Any]:
        return {"part": self.part, "rows": list(self.rows), "next": self.next, "total": self.total}

    @classmethod
    def from_map(cls, body: Mapping[str, Any]) -> SnapshotPage:
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or not 0 <= total < 2**40:
            raise WireError("field 'total' must be a record count")
        rows = _list(body, "rows", MAX_SNAPSHOT_ROWS)
        # Up to 131,072 rows a page: checked by C loops (map, all), not a Python one.
        if rows and (set(map(type, rows)) != {bytes} or not all(rows)):
            raise WireError("field 'rows' must hold non-empty bin rows")
        size = sum(map(len, rows))
        if size > MAX_BATCH_BYTES:
            raise WireError(f"snapshot page holds {size} bytes, bound is {MAX_BATCH_BYTES}")
        return cls(_part(body), tuple(rows), _snapshot_cursor(body, "next"), total)


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (PushBatch, PushAck, DiffQuery, DiffAnswer, Fetch, RecordBatch, SyncError, Scan,
                ScanBatch, LoadReport, SnapshotRead, SnapshotPage)
}


def decode_message(type_code: int, body: Mapping[str, Any]) -> Message:
    """The message of a frame's type byte and decoded map; WireError if either is bad."""
    return decode_typed(MESSAGE_TYPES, type_code, body, "replication")
