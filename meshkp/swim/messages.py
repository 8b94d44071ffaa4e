"""SWIM wire messages: typed dataclasses with a stable TYPE code and msgpack-map (de)serialisation.

The transport frames each message as: version byte, TYPE byte, msgpack map of `to_map()`
(DESIGN.md "Wire format"). `from_map` validates every field and raises WireError, which the
transport counts and drops: a peer's bytes never reach the protocol unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import msgpack

from meshkp.errors import WireError
from meshkp.swim.types import Addr, Status

# --- Bounds on what a peer can make us hold, each with what it protects against. -------------
# Counters (sequence numbers, incarnations) fit msgpack's int64; larger would not round-trip.
MAX_COUNTER = 2**63 - 1
# Node ids are names or key fingerprints (64 hex chars); longer ids only bloat every message.
MAX_NODE_ID_CHARS = 128
# DNS names are at most 253 characters; anything longer is not an address.
MAX_HOST_CHARS = 253
# Node meta (memberlist MetaMaxSize): it rides in every alive message and push-pull entry.
MAX_META_BYTES = 512
MAX_META_ENTRIES = 16
# A compound frame is at most udp_frame_bytes; memberlist counts parts in one byte.
MAX_COMPOUND_PARTS = 255
# Push-pull carries the whole table: 10,000 members is ~1 MB, far above any planned mesh, and
# stops a peer from making us allocate an unbounded list.
MAX_PUSH_PULL_MEMBERS = 10_000
# Delegate state in push-pull (replication summary); memberlist caps push state at 20 MB.
MAX_USER_STATE_BYTES = 16 * 1024 * 1024

# Bytes of a UDP frame that are not the message map: version byte, type byte, key id and the
# NaCl SecretBox nonce (24) and MAC (16), with margin. The map budget is udp_frame_bytes minus it.
FRAME_OVERHEAD = 64
# A compound map is {"m": [[type, map], ...]}: map header, key, array header (<= 3 bytes).
COMPOUND_HEADER = 6
# Each compound part adds a 2-element array header and its type code.
PART_OVERHEAD = 2


def packb(obj: object) -> bytes:
    """msgpack-encode with bin type for bytes (the one encoding used for size and for the wire)."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


class Message:
    """Base of every SWIM message. Subclasses are frozen dataclasses with a unique TYPE."""

    __slots__ = ()
    TYPE: ClassVar[int]

    def to_map(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        raise NotImplementedError


# --- field validators: each raises WireError naming the message, field and problem ------------

def _field(m: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(m, Mapping):
        raise WireError(f"{where}: body must be a map, got {type(m).__name__}")
    if key not in m:
        raise WireError(f"{where}: missing field {key!r}")
    return m[key]


def _uint(m: Mapping[str, Any], key: str, where: str, maximum: int = MAX_COUNTER) -> int:
    v = _field(m, key, where)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= maximum:
        raise WireError(f"{where}: {key} must be an integer in 0..{maximum}, got {v!r}")
    return v


def _bool(m: Mapping[str, Any], key: str, where: str) -> bool:
    v = _field(m, key, where)
    if not isinstance(v, bool):
        raise WireError(f"{where}: {key} must be a boolean, got {v!r}")
    return v


def _text(v: Any, what: str, where: str, max_chars: int, allow_empty: bool = False) -> str:
    if not isinstance(v, str) or len(v) > max_chars or (not v and not allow_empty):
        raise WireError(f"{where}: {what} must be a string of 1..{max_chars} characters")
    return v


def _node_id(m: Mapping[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    return _text(_field(m, key, where), key, where, MAX_NODE_ID_CHARS, allow_empty)


def _addr_value(v: Any, what: str, where: str) -> Addr:
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise WireError(f"{where}: {what} must be [host, port]")
    host = _text(v[0], f"{what} host", where, MAX_HOST_CHARS)
    port = v[1]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise WireError(f"{where}: {what} port must be within 1..65535, got {port!r}")
    return (host, port)


def _addr(m: Mapping[str, Any], key: str, where: str) -> Addr:
    return _addr_value(_field(m, key, where), key, where)


def _meta_value(v: Any, where: str) -> dict[str, str]:
    if not isinstance(v, Mapping) or len(v) > MAX_META_ENTRIES:
        raise WireError(f"{where}: meta must be a map of at most {MAX_META_ENTRIES} entries")
    if not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise WireError(f"{where}: meta keys and values must be strings")
    meta = dict(v)
    if len(packb(meta)) > MAX_META_BYTES:
        raise WireError(f"{where}: meta exceeds {MAX_META_BYTES} bytes")
    return meta


def _status(v: Any, where: str) -> Status:
    if not isinstance(v, int) or isinstance(v, bool) or v not in Status._value2member_map_:
        raise WireError(f"{where}: unknown member status {v!r}")
    return Status(v)


# --- failure detector -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Direct probe. `target` is the node id we expect to answer ("" when unknown, e.g. a seed)."""

    TYPE: ClassVar[int] = 1
    seq: int
    target: str
    source: str
    source_addr: Addr

    def to_map(self) -> dict[str, Any]:
        return {"seq": self.seq, "target": self.target, "source": self.source,
                "source_addr": list(self.source_addr)}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_uint(m, "seq", "ping"), _node_id(m, "target", "ping", allow_empty=True),
                   _node_id(m, "source", "ping"), _addr(m, "source_addr", "ping"))


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Answer to a Ping (or relayed answer to a PingReq) carrying the prober's sequence number."""

    TYPE: ClassVar[int] = 2
    seq: int

    def to_map(self) -> dict[str, Any]:
        return {"seq": self.seq}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_uint(m, "seq", "ack"))


@dataclass(frozen=True, slots=True)
class PingReq(Message):
    """Ask a member to probe `target` for us (SWIM §3.1); with `nack`, it reports a miss (Lifeguard)."""

    TYPE: ClassVar[int] = 3
    seq: int
    target: str
    target_addr: Addr
    source: str
    source_addr: Addr
    nack: bool

    def to_map(self) -> dict[str, Any]:
        return {"seq": self.seq, "target": self.target, "target_addr": list(self.target_addr),
                "source": self.source, "source_addr": list(self.source_addr), "nack": self.nack}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        w = "ping_req"
        return cls(_uint(m, "seq", w), _node_id(m, "target", w), _addr(m, "target_addr", w),
                   _node_id(m, "source", w), _addr(m, "source_addr", w), _bool(m, "nack", w))


@dataclass(frozen=True, slots=True)
class Nack(Message):
    """An indirect prober could not reach the target: evidence that we, the asker, are healthy."""

    TYPE: ClassVar[int] = 4
    seq: int

    def to_map(self) -> dict[str, Any]:
        return {"seq": self.seq}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_uint(m, "seq", "nack"))


# --- membership news (broadcast through the piggyback queue) ----------------------------------

@dataclass(frozen=True, slots=True)
class Alive(Message):
    """`node` is alive at `incarnation`, reachable at `addr`, with `meta` (e.g. {"http": ...})."""

    TYPE: ClassVar[int] = 5
    node: str
    addr: Addr
    incarnation: int
    meta: Mapping[str, str]

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "addr": list(self.addr), "inc": self.incarnation,
                "meta": dict(self.meta)}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_node_id(m, "node", "alive"), _addr(m, "addr", "alive"),
                   _uint(m, "inc", "alive"), _meta_value(_field(m, "meta", "alive"), "alive"))


@dataclass(frozen=True, slots=True)
class Suspect(Message):
    """`source` suspects `node` at `incarnation`; the node refutes with a higher incarnation."""

    TYPE: ClassVar[int] = 6
    node: str
    incarnation: int
    source: str

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.incarnation, "source": self.source}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_node_id(m, "node", "suspect"), _uint(m, "inc", "suspect"),
                   _node_id(m, "source", "suspect"))


@dataclass(frozen=True, slots=True)
class Dead(Message):
    """`source` declares `node` failed at `incarnation`."""

    TYPE: ClassVar[int] = 7
    node: str
    incarnation: int
    source: str

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.incarnation, "source": self.source}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_node_id(m, "node", "dead"), _uint(m, "inc", "dead"),
                   _node_id(m, "source", "dead"))


@dataclass(frozen=True, slots=True)
class Leave(Message):
    """`node` leaves the cluster on purpose (graceful); members record it as LEFT, not DEAD."""

    TYPE: ClassVar[int] = 8
    node: str
    incarnation: int

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.incarnation}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(_node_id(m, "node", "leave"), _uint(m, "inc", "leave"))


# --- full state exchange over TCP -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One row of a push-pull: what the sender believes about a member."""

    node: str
    addr: Addr
    incarnation: int
    status: Status
    meta: Mapping[str, str]

    def to_list(self) -> list[Any]:
        return [self.node, list(self.addr), self.incarnation, int(self.status), dict(self.meta)]

    @classmethod
    def from_list(cls, v: Any) -> MemberRecord:
        w = "push_pull member"
        if not isinstance(v, list | tuple) or len(v) != 5:
            raise WireError(f"{w}: must be [node, addr, inc, status, meta]")
        node = _text(v[0], "node", w, MAX_NODE_ID_CHARS)
        inc = v[2]
        if not isinstance(inc, int) or isinstance(inc, bool) or not 0 <= inc <= MAX_COUNTER:
            raise WireError(f"{w}: incarnation out of range: {inc!r}")
        return cls(node, _addr_value(v[1], "addr", w), inc, _status(v[3], w),
                   _meta_value(v[4], w))


@dataclass(frozen=True, slots=True)
class PushPull(Message):
    """The sender's whole member table plus its delegate state; `reply` marks the answer."""

    TYPE: ClassVar[int] = 9
    source: str
    join: bool
    reply: bool
    members: tuple[MemberRecord, ...]
    user_state: bytes = b""

    def to_map(self) -> dict[str, Any]:
        return {"source": self.source, "join": self.join, "reply": self.reply,
                "members": [r.to_list() for r in self.members], "user": self.user_state}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        w = "push_pull"
        rows = _field(m, "members", w)
        if not isinstance(rows, list | tuple) or len(rows) > MAX_PUSH_PULL_MEMBERS:
            raise WireError(f"{w}: members must be a list of at most {MAX_PUSH_PULL_MEMBERS}")
        user = _field(m, "user", w)
        if not isinstance(user, bytes) or len(user) > MAX_USER_STATE_BYTES:
            raise WireError(f"{w}: user state must be bytes of at most {MAX_USER_STATE_BYTES}")
        return cls(_node_id(m, "source", w), _bool(m, "join", w), _bool(m, "reply", w),
                   tuple(MemberRecord.from_list(r) for r in rows), user)


# --- several messages in one UDP frame (piggybacking) -----------------------------------------

@dataclass(frozen=True, slots=True)
class Compound(Message):
    """Several messages in one frame: a probe message plus piggybacked news, or gossip."""

    TYPE: ClassVar[int] = 10
    messages: tuple[Message, ...]

    def to_map(self) -> dict[str, Any]:
        return {"m": [[msg.TYPE, msg.to_map()] for msg in self.messages]}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        parts = _field(m, "m", "compound")
        if not isinstance(parts, list | tuple) or not 1 <= len(parts) <= MAX_COMPOUND_PARTS:
            raise WireError(f"compound: m must be a list of 1..{MAX_COMPOUND_PARTS} parts")
        out: list[Message] = []
        for part in parts:
            if not isinstance(part, list | tuple) or len(part) != 2:
                raise WireError("compound: each part must be [type, map]")
            if part[0] == cls.TYPE or part[0] == PushPull.TYPE:
                raise WireError("compound: parts cannot be compound or push-pull messages")
            out.append(decode_message(part[0], part[1]))
        return cls(tuple(out))


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (Ping, Ack, PingReq, Nack, Alive, Suspect, Dead, Leave, PushPull, Compound)
}


def decode_message(type_code: Any, body: Any) -> Message:
    """Build the message for a frame's type byte and decoded map; WireError if either is bad."""
    cls = MESSAGE_TYPES.get(type_code) if isinstance(type_code, int) else None
    if cls is None:
        raise WireError(f"unknown message type {type_code!r}")
    try:
        return cls.from_map(body)
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # hostile shapes
        raise WireError(f"{cls.__name__}: malformed body ({exc})") from exc


def part_size(message: Message) -> int:
    """Bytes `message` adds to a compound frame body."""
    return len(packb(message.to_map())) + PART_OVERHEAD


def bundle(messages: Sequence[Message]) -> Message:
    """One message as itself, several as a Compound (what a SendUdp effect carries)."""
    if not messages:
        raise ValueError("bundle() needs at least one message")
    return messages[0] if len(messages) == 1 else Compound(tuple(messages))


def unbundle(message: Message) -> tuple[Message, ...]:
    """The messages inside a frame, in order."""
    return message.messages if isinstance(message, Compound) else (message,)
