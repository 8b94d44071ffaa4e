"""Leadership: what a leader keeps for one term, the followers' progress, lease and quorum.

Created when a node wins an election and dropped when it steps down, so nothing of one term's
leadership leaks into another. It decides what to send each follower and reads their
replies; RaftCore owns the log, the commit index and the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from meshkp.control.config import ControlConfig
from meshkp.control.raft.log import RaftLog
from meshkp.control.raft.messages import AppendEntries, AppendResponse, InstallSnapshot
from meshkp.control.raft.progress import Progress, ProgressState
from meshkp.control.raft.quorum import quorum_value
from meshkp.control.raft.types import Snapshot

log = logging.getLogger("meshkp.control")

NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a reply means for the core: the follower's match grew, and/or send it more now."""

    matched_more: bool = False
    send: bool = False


class Leadership:
    """A leader's volatile state for one term (Raft Fig. 2 "volatile state on leaders")."""

    def __init__(self, config: ControlConfig, node_id: str, term: int, now: float, term_start: int) -> None:
        self.config = config
        self.id = node_id
        self.term = term
        self.elected_at = now
        # Index of this term's no-op: until it commits, the leader holds no lease.
        self.term_start = term_start
        self.heartbeat_due = now + config.heartbeat_interval
        self.progress: dict[str, Progress] = {}

    def sync(self, members: frozenset[str], last_index: int) -> None:
        """Track exactly the members other than us (after each configuration change)."""
        others = members - {self.id}
        for gone in set(self.progress) - others:
            del self.progress[gone]
        for peer in sorted(others - set(self.progress)):  # sorted: runs replay exactly
            self.progress[peer] = Progress(next=last_index + 1)

    # -- quorum formulas over the progress -------------------------------------------------

    def commit_candidate(self, voters: frozenset[str], own_match: int) -> int:
        """The highest index a majority of voters holds durably (ours: `own_match`)."""
        return quorum_value([own_match if v == self.id else self._match(v) for v in voters])

    def lease_start(self, now: float, voters: frozenset[str]) -> float:
        """Where the lease starts; NEVER while we are not a voter (removing ourselves)."""
        return self._quorum_acked(now, voters) if self.id in voters else NEVER

    def quorum_active(self, now: float, voters: frozenset[str]) -> bool:
        """CheckQuorum: a majority acknowledged something we sent within election_timeout_min."""
        start = max(self.elected_at, self._quorum_acked(now, voters))
        return now - start < self.config.election_timeout_min

    def _quorum_acked(self, now: float, voters: frozenset[str]) -> float:
        """The latest of our send times a majority of voters acknowledged (we count as now)."""
        return quorum_value([now if v == self.id else self._acked(v) for v in voters])

    # -- sending ---------------------------------------------------------------------------

    def message_for(self, peer: str, now: float, log_: RaftLog, commit: int, snapshot: Snapshot | None,
                    notify: bool = False) -> AppendEntries | InstallSnapshot | None:
        """What to send `peer` now: entries from its next index if the window allows, else an
        empty append (a heartbeat that also carries the commit index), or a snapshot when the
        entries it needs are compacted away. Updates its progress as sent. `notify`: sent only
        to tell a new commit index; if it carries no entries to a follower that keeps up, it
        asks for no reply (a commit costs each follower one message less each way)."""
        pr = self.progress[peer]
        if (pr.state is ProgressState.SNAPSHOT
                and now - pr.snapshot_sent_at >= self.config.snapshot_retry_interval):
            return self._snapshot_for(peer, pr, now, snapshot)
        prev_index = pr.next - 1
        prev_term = log_.term_at(prev_index)
        if prev_term is None:
            return self._snapshot_for(peer, pr, now, snapshot)
        entries = []
        if pr.next <= log_.last_index and pr.can_send_entries(self.config.max_inflight_appends):
            entries = log_.batch(pr.next, self.config.max_append_entries, self.config.max_append_bytes)
        if pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        elif entries and pr.state is ProgressState.REPLICATE:
            pr.next = entries[-1].index + 1
            pr.inflight.append(entries[-1].index)
        quiet = notify and not entries and pr.state is ProgressState.REPLICATE
        return AppendEntries(self.term, prev_index, prev_term, tuple(entries), commit, now,
                             ack=not quiet)

    def wants_entries(self, peer: str) -> bool:
        return self.progress[peer].can_send_entries(self.config.max_inflight_appends)

    def _snapshot_for(self, peer: str, pr: Progress, now: float,
                      snapshot: Snapshot | None) -> InstallSnapshot | None:
        if snapshot is None:
            log.error("event=raft_no_snapshot node=%s peer=%s next=%d", self.id, peer, pr.next)
            return None
        pr.become_snapshot(snapshot.index, now)
        log.info("event=raft_snapshot_sent node=%s peer=%s index=%d bytes=%d",
                 self.id, peer, snapshot.index, len(snapshot.data))
        return InstallSnapshot(self.term, snapshot, now)

    # -- replies ---------------------------------------------------------------------------

    def on_reply(self, peer: str, now: float, m: AppendResponse, log_: RaftLog) -> Reaction:
        """A reply of `peer` to our AppendEntries or InstallSnapshot in this term."""
        pr = self.progress.get(peer)
        if pr is None:
            return Reaction()
        pr.last_reply_at = now
        newest = m.sent_at > pr.acked_sent_at  # answers our latest message it has answered
        if self.elected_at <= m.sent_at <= now:
            pr.acked_sent_at = max(pr.acked_sent_at, m.sent_at)
        if m.success:
            if m.index > log_.last_index:
                return Reaction()  # claims entries we never sent
            matched_more = pr.acknowledged(m.index)
            if pr.state is not ProgressState.REPLICATE and (
                    pr.state is ProgressState.PROBE or m.index >= pr.pending_snapshot):
                pr.become_replicate()
            more = pr.next <= log_.last_index and pr.can_send_entries(self.config.max_inflight_appends)
            return Reaction(matched_more, more)
        if pr.state is ProgressState.SNAPSHOT:
            # It handled a message sent after the snapshot and still lacks it: the snapshot was
            # lost (a crash, a dropped connection). Resend, at most once per election timeout.
            lost = (m.sent_at > pr.snapshot_sent_at
                    and now - pr.snapshot_sent_at >= self.config.election_timeout_min)
            if lost:
                pr.snapshot_sent_at = NEVER  # message_for() resends it
            return Reaction(send=lost)
        if m.index <= pr.match:
            if newest and m.hint_index < pr.match:
                # Not a stale rejection: it no longer holds what it acknowledged (its log was
                # forgotten by `meshkp recover --rejoin`). Probe again from where it says.
                log.warning("event=raft_follower_lost_log node=%s peer=%s match=%d now=%d",
                            self.id, peer, pr.match, m.hint_index)
                pr.match = m.hint_index
                pr.next = m.hint_index + 1
                pr.become_probe()
                return Reaction(send=True)
            return Reaction()  # a stale rejection
        if pr.state is ProgressState.PROBE and m.index != pr.next - 1:
            return Reaction()  # answers an older probe
        if m.hint_index < log_.base_index:
            next_index = m.hint_index + 1  # what it needs is compacted: a snapshot follows
        else:
            next_index = log_.find_conflict_by_term(m.hint_index, m.hint_term) + 1
        pr.next = max(pr.match + 1, min(next_index, m.index))
        pr.become_probe()
        return Reaction(send=True)

    def _match(self, voter: str) -> int:
        pr = self.progress.get(voter)
        return pr.match if pr else 0

    def _acked(self, voter: str) -> float:
        pr = self.progress.get(voter)
        return pr.acked_sent_at if pr else NEVER
