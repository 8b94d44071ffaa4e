"""What every diff initiator shares (crdt.merkle_diff v1, crdt.recon v2/v3): the result,
the wire counts, the start/done/result life cycle, and the in-process loop of tests.

A subclass says what its first query asks (`_first_query`) and how it takes an answer
(`handle`); the found differences go into `_local_only`, `_remote_only` and `_differing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from crdt.errors import CrdtConfigError, DiffProtocolError
from crdt.merkle import MerkleTree


@dataclass(frozen=True, slots=True)
class DiffResult:
    """Where two maps differ. "local" is the initiator's tree, "remote" the responder's."""

    local_only: Mapping[bytes, bytes]  # the responder lacks these: id -> local digest
    remote_only: Mapping[bytes, bytes]  # the initiator lacks these: id -> remote digest
    differing: Mapping[bytes, tuple[bytes, bytes]]  # both have: id -> (local, remote)

    def ids(self) -> frozenset[bytes]:
        """Every id that needs a sync."""
        return frozenset(self.local_only) | frozenset(self.remote_only) | frozenset(self.differing)


@dataclass(slots=True)
class DiffStats:
    """What a diff cost on the wire (bytes are encoded message lengths)."""

    round_trips: int = 0
    messages: int = 0
    bytes_sent: int = 0  # by this side
    bytes_received: int = 0
    hashes: int = 0  # node hashes in either direction, the root included
    entries: int = 0  # (id, digest) pairs in either direction

    @property
    def bytes_total(self) -> int:
        """Both directions."""
        return self.bytes_sent + self.bytes_received

    def answered(self, query: bytes, reply: bytes) -> None:
        """Count one query a responder answered."""
        self.round_trips += 1
        self.messages += 2
        self.bytes_received += len(query)
        self.bytes_sent += len(reply)


def validate_session_bounds(max_message_bytes: int, max_round_trips: int) -> None:
    """Raise CrdtConfigError if a diff's message or round-trip bound is out of range (a
    message must hold a 4 KiB listing; a diff must be allowed one round trip)."""
    if max_message_bytes < 4096:
        raise CrdtConfigError(f"max_message_bytes={max_message_bytes}: must be >= 4096")
    if max_round_trips < 1:
        raise CrdtConfigError(f"max_round_trips={max_round_trips}: must be >= 1")


class DiffSession:
    """One diff of `tree` (local) against a responder's tree: state kept by the initiator."""

    def __init__(self, tree: MerkleTree) -> None:
        self.tree = tree
        self.stats = DiffStats()
        self._started = False
        self._done = False
        self._local_only: dict[bytes, bytes] = {}
        self._remote_only: dict[bytes, bytes] = {}
        self._differing: dict[bytes, tuple[bytes, bytes]] = {}

    @property
    def done(self) -> bool:
        """True once the result is complete."""
        return self._done

    @property
    def result(self) -> DiffResult:
        """The differences found; only once `done`."""
        if not self._done:
            raise DiffProtocolError("the diff has not finished: keep exchanging messages")
        return DiffResult(self._local_only, self._remote_only, self._differing)

    def start(self) -> bytes:
        """The first query: my root, and my root's children (or, if I am empty, a listing)."""
        if self._started:
            raise DiffProtocolError(f"start() called twice on one {type(self).__name__}")
        self._started = True
        return self._first_query()

    def _first_query(self) -> bytes:
        raise NotImplementedError

    def _check_outstanding(self) -> None:
        if not self._started or self._done:
            raise DiffProtocolError("no query is outstanding")

    def handle(self, data: bytes) -> bytes | None:
        """Take the responder's answer; return the next query, or None when done."""
        raise NotImplementedError


class Responder(Protocol):
    def handle(self, data: bytes) -> bytes:
        """The answer to one query."""
        ...


def run_in_process(initiator: DiffSession, responder: Responder) -> tuple[DiffResult, DiffStats]:
    """Run a whole diff in one process (tests, benchmarks): the initiator's result and stats."""
    message: bytes | None = initiator.start()
    while message is not None:
        message = initiator.handle(responder.handle(message))
    return initiator.result, initiator.stats
