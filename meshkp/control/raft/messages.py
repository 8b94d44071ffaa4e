"""Control-plane wire messages: typed dataclasses with a stable TYPE code and validated maps.

Each message travels in one sealed TCP frame of the cluster transport (meshkp/net/wire.py):
version byte, TYPE byte, msgpack map of `to_map()`; the sender's node id rides in the frame
(`Frame.sender`, authenticated by the cluster keyring) and is passed to `RaftCore.handle`.
`decode_message` checks every field and bound before a message is built and raises WireError,
which the transport counts and drops. Never pickle.
Type codes 60-69 are the control plane's (SWIM uses 1-10, replication 40-49).

Raft's RPCs (Raft Fig. 2) plus two the driver uses to forward a client's change to the leader:
ProposeRequest / ProposeReply (the core never sees those).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from meshkp.control.raft.codec import (
    blob,
    entry_body_from_obj,
    entry_body_to_obj,
    field,
    flag,
    generation_of,
    node_id,
    seconds,
    snapshot_from_obj,
    snapshot_to_obj,
    uint,
    with_generation,
)
from meshkp.control.raft.membership import Generation
from meshkp.control.raft.types import Entry, Snapshot
from meshkp.errors import WireError
from meshkp.net.message import Message as Message  # re-exported: the protocol's base
from meshkp.net.message import decode_typed
from meshkp.net.wire import TCP_FRAME_BYTES

# --- Bounds, each with what it protects against. ----------------------------------------------
# Entries in one AppendEntries: bounds the work of one message; honest leaders send at most
# ControlConfig.max_append_entries (<= this).
MAX_ENTRIES = 4096
# Entry bytes in one AppendEntries (ControlConfig.max_append_bytes <= this), and one entry.
MAX_ENTRIES_BYTES = 4 * 1024 * 1024
MAX_ENTRY_BYTES = 1024 * 1024
# One snapshot travels whole in one frame; the policy state machine keeps its state below this
# (meshkp/control/policy/bounds.py), with room for the frame's own headers.
MAX_SNAPSHOT_BYTES = TCP_FRAME_BYTES - 256 * 1024
# Free text a peer sends back (an error reason).
MAX_REASON_CHARS = 512


@dataclass(frozen=True, slots=True)
class AppendEntries(Message):
    """Leader -> follower: entries after (prev_index, prev_term), or none (a heartbeat).

    `sent_at` is the leader's monotonic time when it sent this; the reply echoes it, and the
    leader lease starts at the latest send time a majority echoed (openraft "leader lease").
    `ack` False: an empty append that only tells a new commit index, answered only if it does
    not match (its success would tell the leader nothing; the heartbeats keep the lease).
    """

    TYPE: ClassVar[int] = 60
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    sent_at: float
    ack: bool = True
    # The newest generation its sender knows (membership.py); metadata of the envelope, not
    # of the RPC, so it takes no part in equality.
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        obj = {"t": self.term, "pi": self.prev_index, "pt": self.prev_term,
               "e": [entry_body_to_obj(e) for e in self.entries], "c": self.commit, "at": self.sent_at}
        if not self.ack:  # absent: True, as older nodes send it
            obj["ack"] = False
        return with_generation(obj, self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> AppendEntries:
        where = "append entries"
        prev_index = uint(field(m, "pi", where), "prev_index")
        raw = field(m, "e", where)
        if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
            raise WireError(f"{where}: entries must be a list of at most {MAX_ENTRIES}")
        entries = tuple(entry_body_from_obj(obj, prev_index + 1 + i, MAX_ENTRY_BYTES)
                        for i, obj in enumerate(raw))
        if sum(len(e.data) for e in entries) > MAX_ENTRIES_BYTES:
            raise WireError(f"{where}: entries exceed {MAX_ENTRIES_BYTES} bytes")
        return cls(uint(field(m, "t", where), "term"), prev_index,
                   uint(field(m, "pt", where), "prev_term"), entries,
                   uint(field(m, "c", where), "commit"), seconds(field(m, "at", where), "sent_at"),
                   flag(m.get("ack", True), "ack"), generation_of(m))


@dataclass(frozen=True, slots=True)
class AppendResponse(Message):
    """Follower -> leader, to AppendEntries and InstallSnapshot.

    success: `index` is the last index now known to match the leader's log. Otherwise `index`
    is the rejected prev_index, and (hint_index, hint_term) is where the follower's log may
    match (etcd's conflict-term hint), so the leader skips a term per round trip.
    """

    TYPE: ClassVar[int] = 61
    term: int
    success: bool
    index: int
    sent_at: float
    hint_index: int = 0
    hint_term: int = 0
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        return with_generation({"t": self.term, "ok": self.success, "i": self.index,
                                "at": self.sent_at, "hi": self.hint_index, "ht": self.hint_term},
                               self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> AppendResponse:
        where = "append response"
        return cls(uint(field(m, "t", where), "term"), flag(field(m, "ok", where), "ok"),
                   uint(field(m, "i", where), "index"), seconds(field(m, "at", where), "sent_at"),
                   uint(field(m, "hi", where), "hint_index"), uint(field(m, "ht", where), "hint_term"),
                   generation_of(m))


@dataclass(frozen=True, slots=True)
class VoteRequest(Message):
    """Candidate -> voters. `pre`: a PreVote (thesis §9.6) for `term` without moving to it."""

    TYPE: ClassVar[int] = 62
    term: int
    last_index: int
    last_term: int
    pre: bool
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        return with_generation({"t": self.term, "li": self.last_index, "lt": self.last_term,
                                "pre": self.pre}, self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> VoteRequest:
        where = "vote request"
        return cls(uint(field(m, "t", where), "term"), uint(field(m, "li", where), "last_index"),
                   uint(field(m, "lt", where), "last_term"), flag(field(m, "pre", where), "pre"),
                   generation_of(m))


@dataclass(frozen=True, slots=True)
class VoteResponse(Message):
    """Voter -> candidate. A granted pre-vote carries the asked term, a refusal the voter's."""

    TYPE: ClassVar[int] = 63
    term: int
    granted: bool
    pre: bool
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        return with_generation({"t": self.term, "ok": self.granted, "pre": self.pre},
                               self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> VoteResponse:
        where = "vote response"
        return cls(uint(field(m, "t", where), "term"), flag(field(m, "ok", where), "ok"),
                   flag(field(m, "pre", where), "pre"), generation_of(m))


@dataclass(frozen=True, slots=True)
class InstallSnapshot(Message):
    """Leader -> a follower whose next entry was compacted away: the whole applied state."""

    TYPE: ClassVar[int] = 64
    term: int
    snapshot: Snapshot
    sent_at: float
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        return with_generation({"t": self.term, "s": snapshot_to_obj(self.snapshot),
                                "at": self.sent_at}, self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> InstallSnapshot:
        where = "install snapshot"
        return cls(uint(field(m, "t", where), "term"),
                   snapshot_from_obj(field(m, "s", where), MAX_SNAPSHOT_BYTES),
                   seconds(field(m, "at", where), "sent_at"), generation_of(m))


@dataclass(frozen=True, slots=True)
class Refused(Message):
    """A member's answer to a node it refuses: removed for good (stop, rejoin empty), or of an
    older generation or another cluster (the generation it carries tells which is newest)."""

    TYPE: ClassVar[int] = 65
    term: int
    reason: str
    generation: Generation | None = dataclasses.field(default=None, compare=False)

    def to_map(self) -> dict[str, Any]:
        return with_generation({"t": self.term, "r": self.reason[:MAX_REASON_CHARS]},
                               self.generation)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Refused:
        reason = field(m, "r", "refused")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise WireError("refused: reason must be a short string")
        return cls(uint(field(m, "t", "refused"), "term"), reason, generation_of(m))


@dataclass(frozen=True, slots=True)
class ProposeRequest(Message):
    """Driver -> the leader's driver: propose this encoded command envelope for me.

    `request_id` is the asking node's, echoed in the reply. The leader's driver decodes the
    envelope (meshkp/control/policy/commands.py), proposes it and answers with its position.
    """

    TYPE: ClassVar[int] = 66
    request_id: int
    data: bytes

    def to_map(self) -> dict[str, Any]:
        return {"id": self.request_id, "d": self.data}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> ProposeRequest:
        return cls(uint(field(m, "id", "propose"), "request_id"),
                   blob(field(m, "d", "propose"), "data", MAX_ENTRY_BYTES))


@dataclass(frozen=True, slots=True)
class ProposeReply(Message):
    """Where the leader appended the proposal (term, index), or why not (`error`, `leader`).

    The asker waits until it has applied `index`: the entry applied there with this `term` is
    the proposal; one with another term means it was lost in a leader change (retry).
    """

    TYPE: ClassVar[int] = 67
    request_id: int
    term: int = 0
    index: int = 0
    error: str = ""
    leader: str = ""

    def to_map(self) -> dict[str, Any]:
        return {"id": self.request_id, "t": self.term, "i": self.index,
                "err": self.error[:MAX_REASON_CHARS], "l": self.leader}

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> ProposeReply:
        where = "propose reply"
        error = field(m, "err", where)
        if not isinstance(error, str) or len(error) > MAX_REASON_CHARS:
            raise WireError(f"{where}: err must be a short string")
        return cls(uint(field(m, "id", where), "request_id"), uint(field(m, "t", where), "term"),
                   uint(field(m, "i", where), "index"), error,
                   node_id(field(m, "l", where), "leader", allow_empty=True))


RaftMessage = AppendEntries | AppendResponse | VoteRequest | VoteResponse | InstallSnapshot | Refused

MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (AppendEntries, AppendResponse, VoteRequest, VoteResponse, InstallSnapshot,
                Refused, ProposeRequest, ProposeReply)
}


def is_control_type(type_code: int) -> bool:
    """Whether a frame type belongs to the control plane (a transport's accept_type)."""
    return type_code in MESSAGE_TYPES


def decode_message(type_code: int, body: Mapping[str, Any]) -> Message:
    """The message of a frame's type byte and decoded map; WireError if either is bad."""
    return decode_typed(MESSAGE_TYPES, type_code, body, "control-plane")
