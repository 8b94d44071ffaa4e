"""What a leader knows of one follower's log (etcd's Progress), and how it sends to it.

- PROBE: the follower's log position is unknown; one AppendEntries at a time walks `next` back
  until a prev entry matches (one term per round trip, with the conflict-term hint).
- REPLICATE: the follower is keeping up; entries are pipelined, up to max_inflight_appends
  unacknowledged messages.
- SNAPSHOT: the entries it needs were compacted away; an InstallSnapshot is in flight.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    # Highest index known to be in the follower's log (matching ours).
    match: int = 0
    # Next index to send.
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    # PROBE: a probe is in flight; cleared by any reply, and re-sent at the next heartbeat.
    probe_sent: bool = False
    # REPLICATE: last index of each AppendEntries in flight, oldest first.
    inflight: deque[int] = field(default_factory=deque)
    # SNAPSHOT: the index of the snapshot sent, and when (resent after snapshot_retry_interval).
    pending_snapshot: int = 0
    snapshot_sent_at: float = float("-inf")
    # The latest of our send times the follower echoed in this term: lease and CheckQuorum.
    acked_sent_at: float = float("-inf")
    # Our clock when its last reply arrived (GET /cluster/consensus "last contact").
    last_reply_at: float = float("-inf")

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight.clear()
        self.next = max(self.next, self.match + 1)

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.probe_sent = False
        self.next = max(self.next, self.match + 1)

    def become_snapshot(self, index: int, now: float) -> None:
        self.state = ProgressState.SNAPSHOT
        self.inflight.clear()
        self.pending_snapshot = index
        self.snapshot_sent_at = now
        self.next = index + 1

    def acknowledged(self, index: int) -> bool:
        """The follower holds our log up to `index`; True if that is news."""
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        if index <= self.match:
            return False
        self.match = index
        self.next = max(self.next, index + 1)
        return True

    def can_send_entries(self, max_inflight: int) -> bool:
        if self.state is ProgressState.PROBE:
            return not self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) < max_inflight
        return False
