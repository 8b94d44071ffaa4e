"""SWIM wire messages: typed dataclasses with a stable TYPE code and msgpack-map (de)serialisation.

The transport frames each message as: version byte, TYPE byte, msgpack map of `to_map()`
(DESIGN.md "Wire format"). `from_map` validates every field and raises WireError, which the
transport counts and drops: a peer's bytes never reach the protocol unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from meshkp.errors import WireError
from meshkp.net.addr import Addr
from meshkp.net.message import Message as Message  # re-exported: the protocol's base
from meshkp.net.message import decode_typed
from meshkp.net.wire import MAX_SENDER_CHARS
from meshkp.swim.fields import (
    MAX_COMPOUND_PARTS,
    MAX_COUNTER,
    MAX_NODE_ID_CHARS,
    MAX_PUSH_PULL_MEMBERS,
    MAX_USER_STATE_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    check_addr,
    check_int,
    check_meta,
    check_proof,
    check_status,
    check_text,
    get_addr,
    get_bool,
    get_field,
    get_node_id,
    get_proof,
    get_uint,
    packb,
)
from meshkp.swim.types import Status

# Bytes of a UDP frame that are not the message map: version byte, type byte, key id and the
# NaCl SecretBox nonce (24) and MAC (16), the signed trailer (120, meshkp/net/frameauth.py) and
# the sender id ("_from", up to 64 characters), with margin. The map budget is udp_frame_bytes
# minus it.
FRAME_OVERHEAD = 264
# A compound map is {"m": [[type, map], ...]}: map header, key, array header (<= 3 bytes).
COMPOUND_HEADER = 6
# Each compound part adds a 2-element array header and its type code.
PART_OVERHEAD = 2




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
        return cls(get_uint(m, "seq", "ping"), get_node_id(m, "target", "ping", allow_empty=True),
                   get_node_id(m, "source", "ping"), get_addr(m, "source_addr", "ping"))


@dataclass(frozen=True, slots=True)
class _ProbeReply(Message):
    """A reply that carries the prober's sequence number alone (Nack)."""

    NAME: ClassVar[str]
    seq: int

    def to_map(self) -> dict[str, Any]:
        return {"seq": self.seq}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(get_uint(m, "seq", cls.NAME))


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Answer to a Ping (or relayed answer to a PingReq): the prober's sequence number, and the
    member that answered (the ping's target), so that an ack counts only for the probe of that
    member. `node` is "" from peers older than this field (matched by sequence alone).
    """

    TYPE: ClassVar[int] = 2
    seq: int
    node: str = ""

    def to_map(self) -> dict[str, Any]:
        if not self.node:
            return {"seq": self.seq}
        return {"seq": self.seq, "node": self.node}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        seq = get_uint(m, "seq", "ack")  # checks first that m is a map
        return cls(seq, get_node_id(m, "node", "ack", allow_empty=True) if "node" in m else "")


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
        return cls(get_uint(m, "seq", w), get_node_id(m, "target", w), get_addr(m, "target_addr", w),
                   get_node_id(m, "source", w), get_addr(m, "source_addr", w), get_bool(m, "nack", w))


@dataclass(frozen=True, slots=True)
class Nack(_ProbeReply):
    """An indirect prober could not reach the target: evidence that we, the asker, are healthy."""

    TYPE: ClassVar[int] = 4
    NAME: ClassVar[str] = "nack"


# --- membership news (broadcast through the piggyback queue) ----------------------------------

# Statements: news that must be signed by the node it speaks for (Alive, Leave: the member
# itself; Suspect, Dead: the accuser, `source`). The core carries `sig` (and Alive's `key`)
# opaquely and relays them unchanged; the driver signs our own statements on the way out and
# drops, before the core sees them, statements whose signature does not hold
# (meshkp/membership/proofs.py). An empty `sig` is a statement of ours not yet signed.

@dataclass(frozen=True, slots=True)
class Alive(Message):
    """`node` is alive at `incarnation`, reachable at `addr`, with `meta` (e.g. {"http": ...}).

    Signed by `node` itself with `key`, its Ed25519 public key: only a member can announce or
    refute for itself.
    """

    TYPE: ClassVar[int] = 5
    node: str
    addr: Addr
    incarnation: int
    meta: Mapping[str, str]
    key: bytes = b""
    sig: bytes = b""

    @property
    def signer(self) -> str:
        return self.node

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature."""
        return packb([self.TYPE, self.node, list(self.addr), self.incarnation, dict(self.meta),
                      self.key])

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "addr": list(self.addr), "inc": self.incarnation,
                "meta": dict(self.meta), "key": self.key, "sig": self.sig}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(get_node_id(m, "node", "alive"), get_addr(m, "addr", "alive"),
                   get_uint(m, "inc", "alive"), check_meta(get_field(m, "meta", "alive"), "alive"),
                   get_proof(m, "key", "alive", PUBLIC_KEY_BYTES),
                   get_proof(m, "sig", "alive", SIGNATURE_BYTES))


@dataclass(frozen=True, slots=True)
class _Accusation(Message):
    """The wire form Suspect and Dead share: `source` accuses `node` at `incarnation`, signed
    by `source` (so an accusation always names, and proves, its accuser)."""

    NAME: ClassVar[str]
    node: str
    incarnation: int
    source: str
    sig: bytes = b""

    @property
    def signer(self) -> str:
        return self.source

    def signed_bytes(self) -> bytes:
        return packb([self.TYPE, self.node, self.incarnation, self.source])

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.incarnation, "source": self.source,
                "sig": self.sig}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(get_node_id(m, "node", cls.NAME), get_uint(m, "inc", cls.NAME),
                   get_node_id(m, "source", cls.NAME),
                   get_proof(m, "sig", cls.NAME, SIGNATURE_BYTES))


@dataclass(frozen=True, slots=True)
class Suspect(_Accusation):
    """`source` suspects `node` at `incarnation`; the node refutes with a higher incarnation."""

    TYPE: ClassVar[int] = 6
    NAME: ClassVar[str] = "suspect"


@dataclass(frozen=True, slots=True)
class Dead(_Accusation):
    """`source` declares `node` failed at `incarnation`."""

    TYPE: ClassVar[int] = 7
    NAME: ClassVar[str] = "dead"


@dataclass(frozen=True, slots=True)
class Leave(Message):
    """`node` leaves the cluster on purpose (graceful); members record it as LEFT, not DEAD.

    Signed by `node` itself: nobody else can make a member leave.
    """

    TYPE: ClassVar[int] = 8
    node: str
    incarnation: int
    sig: bytes = b""

    @property
    def signer(self) -> str:
        return self.node

    def signed_bytes(self) -> bytes:
        return packb([self.TYPE, self.node, self.incarnation])

    def to_map(self) -> dict[str, Any]:
        return {"node": self.node, "inc": self.incarnation, "sig": self.sig}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        return cls(get_node_id(m, "node", "leave"), get_uint(m, "inc", "leave"),
                   get_proof(m, "sig", "leave", SIGNATURE_BYTES))


Statement = Alive | Suspect | Dead | Leave


# --- full state exchange over TCP -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One row of a push-pull: what the sender believes about a member.

    `key` is the member's public key and `sig` the member's own signature of the statement the
    row stands for (`statement()`: its Alive, or its Leave), so a row can be relayed by anyone
    and still prove itself. Suspect and dead rows count only as the sender's suspicion.
    """

    node: str
    addr: Addr
    incarnation: int
    status: Status
    meta: Mapping[str, str]
    key: bytes = b""
    sig: bytes = b""

    def statement(self) -> Alive | Leave | None:
        """The member's own statement this row carries (None for suspect and dead rows)."""
        if self.status == Status.ALIVE:
            return Alive(self.node, self.addr, self.incarnation, self.meta, self.key, self.sig)
        if self.status == Status.LEFT:
            return Leave(self.node, self.incarnation, self.sig)
        return None

    def to_list(self) -> list[Any]:
        return [self.node, list(self.addr), self.incarnation, int(self.status), dict(self.meta),
                self.key, self.sig]

    @classmethod
    def from_list(cls, v: Any) -> MemberRecord:
        w = "push_pull member"
        if not isinstance(v, list | tuple) or len(v) != 7:
            raise WireError(f"{w}: must be [node, addr, inc, status, meta, key, sig]")
        node = check_text(v[0], "node", w, MAX_NODE_ID_CHARS)
        inc = check_int(v[2], "incarnation", w, 0, MAX_COUNTER)
        return cls(node, check_addr(v[1], "addr", w), inc, check_status(v[3], w),
                   check_meta(v[4], w), check_proof(v[5], "key", w, PUBLIC_KEY_BYTES),
                   check_proof(v[6], "sig", w, SIGNATURE_BYTES))


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
        rows = get_field(m, "members", w)
        if not isinstance(rows, list | tuple) or len(rows) > MAX_PUSH_PULL_MEMBERS:
            raise WireError(f"{w}: members must be a list of at most {MAX_PUSH_PULL_MEMBERS}")
        user = get_field(m, "user", w)
        if not isinstance(user, bytes) or len(user) > MAX_USER_STATE_BYTES:
            raise WireError(f"{w}: user state must be bytes of at most {MAX_USER_STATE_BYTES}")
        return cls(get_node_id(m, "source", w), get_bool(m, "join", w), get_bool(m, "reply", w),
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
        parts = get_field(m, "m", "compound")
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
    """The message of a frame's type byte and decoded map; WireError if either is bad."""
    return decode_typed(MESSAGE_TYPES, type_code, body, "SWIM")


def part_size(message: Message) -> int:
    """Bytes `message` adds to a compound frame body, once the driver has signed it."""
    return len(packb(message.to_map())) + PART_OVERHEAD + _unsigned(message)


def _unsigned(message: Message) -> int:
    """Bytes the driver adds to one of our statements when it signs it (0 if signed already)."""
    if not isinstance(message, Alive | Suspect | Dead | Leave) or message.sig:
        return 0
    if isinstance(message, Alive) and not message.key:
        return SIGNATURE_BYTES + PUBLIC_KEY_BYTES
    return SIGNATURE_BYTES


def bundle(messages: Sequence[Message]) -> Message:
    """One message as itself, several as a Compound (what a SendUdp effect carries)."""
    if not messages:
        raise ValueError("bundle() needs at least one message")
    return messages[0] if len(messages) == 1 else Compound(tuple(messages))


def unbundle(message: Message) -> tuple[Message, ...]:
    """The messages inside a frame, in order."""
    return message.messages if isinstance(message, Compound) else (message,)


def meta_room(udp_frame_bytes: int) -> int:
    """Meta bytes an alive can carry and still share one frame with a ping: both signed, with
    the longest node ids and an IPv6 address (what config validation holds max_meta_bytes to)."""
    node, host = "n" * MAX_SENDER_CHARS, "f" * 45
    addr: Addr = (host, 65535)
    ping = Ping(MAX_COUNTER, node, node, addr)
    alive = Alive(node, addr, MAX_COUNTER, {})
    used = FRAME_OVERHEAD + COMPOUND_HEADER + part_size(ping) + part_size(alive)
    return udp_frame_bytes - used
