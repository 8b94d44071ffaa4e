"""Ready: what the core asks its driver to do, with the order it must be done in ON the data.

The driver loop (etcd's RawNode contract):

    while core.has_ready():
        ready = core.ready()
        send(ready.messages[:ready.early])  # 0. optional: the leader's appends, before the write
        storage.save(ready)             # 1. snapshot, hard state, entries: ONE synced write
        transport.send(ready.messages)  # 2. only now: a message may promise what step 1 saved
        state = install/apply(...)      # 3. ready.snapshot (if any), then ready.committed in order
        core.advance(ready)             # 4. the core learns what was applied

Between ready() and advance() the driver may call tick/handle/propose; the next Ready then
holds what came meanwhile. Readies must be processed one at a time, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshkp.control.raft.membership import Configuration
from meshkp.control.raft.messages import RaftMessage
from meshkp.control.raft.progress import ProgressState
from meshkp.control.raft.types import Entry, HardState, Role, Snapshot


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Send `message` to node `to` over the cluster transport (best effort, no retry)."""

    to: str
    message: RaftMessage


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts (not persisted), reported when they change: metrics, logs, /cluster/leader."""

    role: Role
    leader: str
    term: int


@dataclass(frozen=True, slots=True)
class Ready:
    # The volatile state, when it changed since the last Ready (else None). Never persisted.
    soft_state: SoftState | None
    # Persist when not None, synced, BEFORE sending `messages`: a vote or an acknowledged term
    # that is lost in a crash lets one node vote twice in a term.
    hard_state: HardState | None
    # A snapshot received from the leader: persist it BEFORE `entries` and `messages`, replacing
    # the whole stored log (delete every stored entry; the log base becomes its index and term),
    # then install its data as the state machine's state BEFORE applying `committed`.
    snapshot: Snapshot | None
    # Append to stable storage, synced, BEFORE sending `messages`. A stored entry at or after
    # entries[0].index is replaced (the leader overwrote a conflicting suffix): delete them first.
    entries: tuple[Entry, ...]
    # Send AFTER the writes above are durable; each may be lost, duplicated or reordered.
    messages: tuple[Outgoing, ...]
    # Committed entries to apply to the state machine, in order, AFTER the writes above (they
    # may include some of `entries`). Each carries its fencing token (entry.token).
    committed: tuple[Entry, ...]
    # Whether the write of step 1 must be synced (fsync) before step 2: a new term, vote,
    # entries or snapshot. A hard state that only moves the commit index may be written lazily.
    must_sync: bool = False
    # The first `early` of `messages` may be sent BEFORE step 1, in parallel with the write: a
    # leader's AppendEntries / InstallSnapshot (Raft thesis §10.2.1). A driver may also send
    # them after it, like the others; the core counts the leader's own entries toward commit
    # only once advance() reported them written.
    early: int = 0


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one follower (GET /cluster/consensus)."""

    match: int
    next: int
    state: ProgressState
    # Seconds since its last reply (None: never, in this term).
    last_contact: float | None
    voter: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A consistent view of the core for status endpoints and metrics."""

    node_id: str
    role: Role
    term: int
    leader: str
    commit: int
    applied: int
    last_index: int
    snapshot_index: int
    configuration: Configuration
    # Seconds of leader lease left (0 when not a leader with a valid lease).
    lease_remaining: float
    # Followers as the leader tracks them ({} on a non-leader).
    peers: dict[str, PeerStatus]
