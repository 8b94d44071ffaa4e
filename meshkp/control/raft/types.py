"""The values the Raft core reads and returns: entries, hard state, snapshots, fencing tokens.

Every one is a frozen dataclass: a Ready hands them to the driver, which may keep them while
the core goes on, so nothing the core changes later can alter what the driver holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from meshkp.control.raft.membership import Configuration


class EntryKind(IntEnum):
    """What an entry carries; the value is its wire code."""

    # Appended by each new leader at the start of its term: committing it commits every earlier
    # entry, since Raft commits only entries of the current term by counting (Raft §5.4.2).
    NOOP = 0
    # An encoded state-machine command (meshkp/control/policy/commands.py); opaque to the core.
    COMMAND = 1
    # A membership change: an encoded ConfigChange (membership.py). The core reads it.
    CONFIG = 2


@dataclass(frozen=True, order=True, slots=True)
class FencingToken:
    """(term, index) of a committed entry: totally ordered, and it only grows in log order.

    A request carrying an older token than a node has applied comes from a stale leader or a
    stale client; compare tokens, never clocks (docs/control.md "Fencing tokens").
    """

    term: int
    index: int

    def __str__(self) -> str:
        return f"{self.term}.{self.index}"


ZERO_TOKEN = FencingToken(0, 0)


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `data` is b"" for NOOP, an encoded command or an encoded ConfigChange."""

    index: int
    term: int
    kind: EntryKind
    data: bytes = b""

    @property
    def token(self) -> FencingToken:
        """The fencing token every node applies this entry with."""
        return FencingToken(self.term, self.index)


@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash before any message that depends on it is sent (Raft Fig. 2).

    `vote` is "" when this node voted for nobody in `term`. `commit` need not be durable for
    safety; it is kept so a restarted node re-applies its committed entries at once.
    `catching_up`: this node started with an empty log and has not yet caught up with a leader
    (RaftCore.catching_up): it must neither vote nor campaign, across restarts too.
    """

    term: int = 0
    vote: str = ""
    commit: int = 0
    catching_up: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The applied state at `index` (encoded by the state machine), with the membership then.

    `data` is opaque to the core: meshkp/control/policy/snapshot.py encodes and decodes it.
    """

    index: int
    term: int
    configuration: Configuration
    data: bytes

    @property
    def token(self) -> FencingToken:
        return FencingToken(self.term, self.index)


@dataclass(frozen=True, slots=True)
class Restored:
    """What the driver read back from durable storage; RaftCore starts from it.

    `base_index`/`base_term`: the entry just before `entries` (compacted away, or (0, 0) for a
    log that was never compacted). `entries` follow it without gaps. A snapshot, if any, is at
    an index in [base_index, last entry]: entries at or below it are already in its state.
    """

    hard_state: HardState = HardState()
    snapshot: Snapshot | None = None
    base_index: int = 0
    base_term: int = 0
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class Compaction:
    """A local snapshot (RaftCore.compact): persist it, then drop stored entries up to the base.

    Entries after base_index stay (snapshot_trailing_entries of them sit behind the snapshot,
    so a follower a little behind catches up by log).
    """

    snapshot: Snapshot
    base_index: int
    base_term: int


class Role(Enum):
    """A node's part in the protocol now."""

    FOLLOWER = "follower"
    # Asking for pre-votes (Raft thesis §9.6): the term does not move until a majority would vote.
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
    # Removed from the cluster for good: it ignores everything and must rejoin with empty state.
    REMOVED = "removed"
