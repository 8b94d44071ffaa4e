"""RaftCore: one node's Raft, without I/O, in the style of etcd's RawNode.

The driver passes the monotonic `now` into every call and turns what the core wants done into
I/O through `ready()` (meshkp/control/raft/ready.py says in which order). The core never
reads a clock, never sleeps and never calls back into its caller.

    core = RaftCore(config, node_id, now, rng=random.Random(seed), restored=storage.load())
    core.tick(now)                      # whenever now >= core.next_deadline()
    core.handle(now, sender, message)   # every decoded control frame
    core.propose(now, data)             # on the leader: returns the entry's (term, index)
    while core.has_ready(): ...         # the Ready loop

Rules, and where they come from:
- elections: randomized timeouts, PreVote (thesis §9.6), majority votes with the up-to-date
  check (Raft §5.4.1); a voter that heard from a leader within election_timeout_min neither
  votes nor pre-votes for anyone else (thesis §4.2.3), and a restarted node behaves as if it
  just had, so its promise survives a crash;
- commit: by majority of match indexes, only of entries of the current term, which each
  leader opens with a no-op (Raft §5.4.2);
- CheckQuorum: a leader that had no majority contact for election_timeout_min steps down;
- leader lease: valid for lease_duration after the latest send time a majority acknowledged
  (docs/control.md "The clock-drift bound" proves why no two leases overlap);
- snapshots and InstallSnapshot (Raft §7), membership one change at a time (membership.py);
- a node whose log was empty at start (a new joiner, or a member whose store was lost or
  forgotten: the damaged-store remedy, `meshkp recover --rejoin`) is `catching_up`: it neither
  votes nor campaigns until a leader's append shows it holds that leader's log up to the
  leader's commit at an entry of the leader's term (persisted in the hard state, so a crash
  midway does not end it). The entries it acknowledged before the loss may be committed on its
  word: voting without them could elect a leader that lacks them, and its lost term and vote
  could let it vote twice in one term (docs/control-plane.md "A member that lost its log");
- generations (membership.Generation): every message carries the newest generation its sender
  knows; one of another cluster, or of an epoch older than the newest this node knows, is
  refused (counted, logged, answered with Refused so the sender learns), and a node that
  learns of a newer epoch than its own configuration's campaigns no more until that
  configuration reaches its log (a voter lost before a `meshkp recover` cannot lead again).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Sequence

from meshkp.control.config import ControlConfig
from meshkp.control.raft.leadership import NEVER, Leadership
from meshkp.control.raft.log import RaftLog
from meshkp.control.raft.membership import (
    ConfigChange,
    ConfigHistory,
    Configuration,
    Generation,
    MembershipChange,
    changed,
)
from meshkp.control.raft.messages import (
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    RaftMessage,
    Refused,
    VoteRequest,
    VoteResponse,
)
from meshkp.control.raft.quorum import has_majority
from meshkp.control.raft.ready import Outgoing, PeerStatus, Ready, SoftState, Status
from meshkp.control.raft.types import (
    Compaction,
    Entry,
    EntryKind,
    FencingToken,
    HardState,
    Restored,
    Role,
    Snapshot,
)
from meshkp.errors import InvalidCommand, NotLeader, ProposalRefused, RaftUsageError

log = logging.getLogger("meshkp.control")

REMOVED_REASON = "removed"
GENERATION_REASON = "generation"
# Senders whose refusal was logged (once per sender and generation); cleared when full, so a
# member flapping through many ids cannot grow it.
MAX_REFUSAL_LOG = 256


class RaftCore:
    """One node's Raft state machine; single-threaded, driven by its caller."""

    def __init__(
        self,
        config: ControlConfig,
        node_id: str,
        now: float,
        *,
        rng: random.Random,
        restored: Restored | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.id = node_id
        self._rng = rng
        state = restored or Restored()
        snapshot = state.snapshot
        self._log = RaftLog(state.base_index, state.base_term, state.entries)
        if snapshot is None and state.base_index > 0:
            raise RaftUsageError("a compacted log needs its snapshot (Restored.snapshot is None)")
        if snapshot is not None and not state.base_index <= snapshot.index <= self._log.last_index:
            raise RaftUsageError(f"snapshot at {snapshot.index} is outside the restored log "
                                 f"{state.base_index}..{self._log.last_index}")
        self._snapshot = snapshot
        hard = state.hard_state
        self._term = hard.term
        self._vote = hard.vote
        # A joiner and a member that lost its store look alike: both withhold their vote (it
        # costs a joiner nothing: it is a learner until it has caught up anyway).
        self._catching_up = hard.catching_up or (snapshot is None and self._log.last_index == 0)
        if self._catching_up:
            log.info("event=raft_catching_up node=%s term=%d: an empty log; no vote and no campaign "
                     "until caught up with a leader", node_id, hard.term)
        self._applied = snapshot.index if snapshot else 0
        self._commit = min(max(hard.commit, self._applied), self._log.last_index)
        # Last committed index handed out in a Ready (applied once advance() says so).
        self._handed = self._applied
        self._configs = _history(snapshot, self._log)
        self._role = Role.FOLLOWER
        self._leader = ""
        self._persisted = hard
        self._reported: SoftState | None = None
        self._unstable_from = self._log.last_index + 1
        # The last index known durable here (advance() reports what the driver persisted): a
        # leader counts only these for itself toward commit, so that it may send its entries
        # before its own write finished (Raft thesis §10.2.1).
        self._stable = self._log.last_index
        self._now = now  # the latest `now` passed in, for commits advance() makes possible
        self._received_snapshot: Snapshot | None = None
        self._outbox: list[Outgoing] = []
        self._early: list[Outgoing] = []  # the leader's appends: may leave before the write
        self._outstanding: Ready | None = None
        self._votes: dict[str, bool] = {}
        self._fork_logged = -1  # the term in which a forked log was last logged (once per term)
        # The committed index at which the leader's log last differed from ours (None: no fork
        # seen since the last append that matched); only an operator can mend it (`recover --rejoin`).
        self.forked_at: int | None = None
        # The newest recovery epoch heard of from a member of our cluster (not persisted: after a
        # restart it is learned again from the first message of the newer generation).
        self._heard_epoch = 0
        self.generation_refused = 0  # messages refused for their generation (metrics, status)
        self._refusals_logged: set[tuple[str, Generation | None]] = set()
        self._superseded_logged = False
        # No vote or pre-vote for anyone before this: a restarted voter keeps the promise it may
        # have made to a leader before the crash (the lease depends on it).
        self._quiet_until = now + config.election_timeout_min
        self._election_deadline = now
        if self._configuration.voters != {node_id}:
            self._reset_election_timer(now)  # a sole voter elects itself at the first tick
        # Set while this node leads (one term); None otherwise.
        self._leadership: Leadership | None = None
        if node_id in self._committed_configuration().removed:
            self._role = Role.REMOVED

    # -- what the driver reads -------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def leader(self) -> str:
        """The leader as last heard of ("" if unknown); only a leased leader knows it is true."""
        return self._leader

    @property
    def commit(self) -> int:
        return self._commit

    @property
    def applied(self) -> int:
        return self._applied

    @property
    def configuration(self) -> Configuration:
        """The latest configuration in the log (the one this node acts on)."""
        return self._configuration

    @property
    def generation(self) -> Generation | None:
        """The newest generation this node knows (what its messages carry); None: a joiner."""
        own = self._configuration.generation
        if own is None or self._heard_epoch <= own.epoch:
            return own
        return Generation(own.cluster, self._heard_epoch)

    @property
    def superseded(self) -> bool:
        """Whether a newer generation exists than this node's configuration (it does not campaign)."""
        own = self._configuration.generation
        return own is not None and self._heard_epoch > own.epoch

    @property
    def catching_up(self) -> bool:
        """Whether this node started with an empty log and has not caught up with a leader yet
        (it neither votes nor campaigns meanwhile; see the module doc)."""
        return self._catching_up

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def last_index(self) -> int:
        return self._log.last_index

    def entries(self, first: int, last: int | None = None) -> list[Entry]:
        """Log entries first..last still held (tests and status; compacted ones are gone)."""
        return self._log.entries(max(first, self._log.base_index + 1), last)

    def term_at(self, index: int) -> int | None:
        return self._log.term_at(index)

    def next_deadline(self) -> float:
        """When tick() next has something to do; the driver may tick more often."""
        if self._role is Role.REMOVED:
            return float("inf")
        if self._leadership is not None:
            return self._leadership.heartbeat_due
        return self._election_deadline

    def is_leader_with_lease(self, now: float) -> bool:
        """Whether this node is the leader and no other node can be, at `now`.

        True means: reads of the applied policy state are current once applied >= read_index
        (the leader has committed its no-op, so it holds every committed entry). Pass a fresh
        `now` and use the answer at once: a pause between the check and its use is not covered
        (fencing tokens are).
        """
        return self.lease_remaining(now) > 0

    def lease_remaining(self, now: float) -> float:
        """Seconds of leader lease left at `now` (0 when none)."""
        lead = self._leadership
        if lead is None or self._commit < lead.term_start:
            return 0.0
        start = lead.lease_start(now, self._configuration.voters)
        return max(0.0, start + self.config.lease_duration - now)

    def read_index(self, now: float) -> int | None:
        """With a valid lease, the index to have applied before serving a read; else None."""
        return self._commit if self.is_leader_with_lease(now) else None

    def snapshot_due(self) -> bool:
        """Whether enough entries were applied since the last snapshot to take one (compact)."""
        base = self._snapshot.index if self._snapshot else 0
        return self._applied - base >= self.config.snapshot_threshold

    def status(self, now: float) -> Status:
        voters = self._configuration.voters
        peers = {
            peer: PeerStatus(pr.match, pr.next, pr.state,
                             None if pr.last_reply_at == NEVER else max(0.0, now - pr.last_reply_at),
                             peer in voters)
            for peer, pr in sorted(self._leadership.progress.items() if self._leadership else ())
        }
        return Status(self.id, self._role, self._term, self._leader, self._commit, self._applied,
                      self._log.last_index, self._snapshot.index if self._snapshot else 0,
                      self._configuration, self.lease_remaining(now), peers)

    # -- inputs ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Fire what is due at `now`: heartbeats and CheckQuorum (leader), elections (others)."""
        self._now = now
        if self._role is Role.REMOVED:
            return
        lead = self._leadership
        if lead is not None:
            if not lead.quorum_active(now, self._configuration.voters):
                log.warning("event=raft_step_down reason=check_quorum node=%s term=%d", self.id, self._term)
                self._become_follower(now, self._term, "")
                return
            if now >= lead.heartbeat_due:
                lead.heartbeat_due = now + self.config.heartbeat_interval
                for peer in lead.progress:
                    self._send_append(peer, now)
            return
        if now >= self._election_deadline:
            if self.id in self._configuration.voters and not self.superseded and not self._catching_up:
                self._campaign(now)
            else:
                if self.superseded and not self._superseded_logged:
                    self._superseded_logged = True
                    log.error("event=raft_generation_superseded node=%s own=%s newest=%s hint=a_forced_"
                              "recovery_started_a_newer_generation:_this_node_waits_for_its_leader;_if_"
                              "its_log_forked_run_meshkp_recover_--rejoin", self.id,
                              self._configuration.generation, self.generation)
                self._reset_election_timer(now)

    def handle(self, now: float, sender: str, message: RaftMessage) -> None:
        """One message from `sender` (the frame's authenticated sender id)."""
        self._now = now
        if self._role is Role.REMOVED or sender == self.id:
            return
        if sender in self._committed_configuration().removed:
            self._send(sender, Refused(self._term, REMOVED_REASON))
            return
        if not self._admit_generation(now, sender, message):
            return
        if isinstance(message, AppendEntries):
            self._on_append(now, sender, message)
        elif isinstance(message, AppendResponse):
            self._on_append_response(now, sender, message)
        elif isinstance(message, VoteRequest):
            self._on_vote_request(now, sender, message)
        elif isinstance(message, VoteResponse):
            self._on_vote_response(now, sender, message)
        elif isinstance(message, InstallSnapshot):
            self._on_snapshot(now, sender, message)
        elif isinstance(message, Refused):
            self._on_refused(sender, message)

    def _admit_generation(self, now: float, sender: str, message: RaftMessage) -> bool:
        """Whether a message's generation is ours or newer; refuse (count, log, tell) if not."""
        theirs, mine = message.generation, self._configuration.generation
        if theirs is None or mine is None:
            return True  # a joiner's, an older node's, or ours while we are a joiner
        if theirs.cluster == mine.cluster and theirs.epoch >= max(mine.epoch, self._heard_epoch):
            if theirs.epoch > self._heard_epoch and theirs.epoch > mine.epoch:
                self._heard_epoch = theirs.epoch
                log.warning("event=raft_generation_newer node=%s own=%s newest=%s from=%s",
                            self.id, mine, theirs, sender)
                if self._role is Role.LEADER:  # it leads an old configuration: stop at once
                    log.warning("event=raft_step_down reason=superseded node=%s term=%d", self.id, self._term)
                    self._become_follower(now, self._term, "")
            return True
        self.generation_refused += 1
        key = (sender, theirs)
        if key not in self._refusals_logged:
            if len(self._refusals_logged) >= MAX_REFUSAL_LOG:
                self._refusals_logged.clear()
            self._refusals_logged.add(key)
            why = "another_cluster" if theirs.cluster != mine.cluster else "an_older_generation"
            log.warning("event=raft_generation_refused node=%s sender=%s theirs=%s ours=%s reason=%s "
                        "hint=the_sender_must_rejoin_(meshkp_recover_--rejoin)_or_be_wiped",
                        self.id, sender, theirs, self.generation, why)
        if not isinstance(message, Refused):  # never answer a refusal: no ping-pong
            self._send(sender, Refused(self._term, GENERATION_REASON))
        return False

    def propose(self, now: float, data: bytes) -> FencingToken:
        """Append a command on the leader; its (term, index), which apply later confirms or not.

        NotLeader (with the known leader) elsewhere; ProposalRefused when too many entries
        wait for commit (a majority is out of reach); InvalidCommand above max_entry_bytes.
        """
        self._now = now
        self._require_leader()
        if len(data) > self.config.max_entry_bytes:
            raise InvalidCommand(f"the command is {len(data)} bytes; control.max_entry_bytes is "
                                 f"{self.config.max_entry_bytes}: split it")
        return self._append_own(now, EntryKind.COMMAND, data)

    def propose_change(self, now: float, change: MembershipChange, *, actor: str = "",
                       origin: str = "", hlc: int = 0) -> FencingToken:
        """Append a membership change on the leader, one at a time (membership.py).

        InvalidCommand when the change itself is not allowed; ProposalRefused when it must
        wait (the leader's no-op or the previous change is not committed, a learner lags).
        """
        self._now = now
        lead = self._require_leader()
        if self._commit < lead.term_start:
            raise ProposalRefused("the new leader has not committed an entry of its term yet; retry shortly")
        pending_at = self._configs.latest_index
        if pending_at > self._commit:
            raise ProposalRefused(f"the membership change at index {pending_at} is not committed "
                                  "yet; one change at a time")
        configuration = changed(self._configuration, change, self.config.max_voters)
        if change.node in configuration.voters and change.node not in self._configuration.voters:
            pr = lead.progress.get(change.node)
            lag = self._log.last_index - (pr.match if pr else 0)
            if lag > self.config.promote_max_lag:
                raise ProposalRefused(f"learner {change.node} is {lag} entries behind (promote_max_lag "
                                      f"is {self.config.promote_max_lag}); promote it once it caught up")
        data = ConfigChange(change, configuration, actor, origin or self.id, hlc).encode()
        return self._append_own(now, EntryKind.CONFIG, data)

    # -- the Ready cycle -------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ready() has anything, and the previous Ready was advanced."""
        if self._outstanding is not None:
            return False
        return bool(
            self._outbox or self._early or self._received_snapshot is not None
            or self._unstable_from <= self._log.last_index or self._commit > self._handed
            or self._hard_state() != self._persisted or self._soft_state() != self._reported
        )

    def ready(self) -> Ready:
        """What to persist, send and apply now (ready.py); call advance() with it when done."""
        if self._outstanding is not None:
            raise RaftUsageError("ready() called again before advance() of the previous Ready")
        soft = self._soft_state()
        hard = self._hard_state()
        snapshot, self._received_snapshot = self._received_snapshot, None
        entries: tuple[Entry, ...] = ()
        if self._unstable_from <= self._log.last_index:
            entries = tuple(self._log.entries(self._unstable_from))
        self._unstable_from = self._log.last_index + 1
        committed: tuple[Entry, ...] = ()
        if self._commit > self._handed:
            committed = tuple(self._log.entries(self._handed + 1, self._commit))
            self._handed = self._commit
        voted = (hard.term, hard.vote) != (self._persisted.term, self._persisted.vote)
        ready = Ready(
            soft_state=soft if soft != self._reported else None,
            hard_state=hard if hard != self._persisted else None,
            snapshot=snapshot,
            entries=entries,
            messages=(*self._early, *self._outbox),
            committed=committed,
            # A new commit index alone need not be synced: losing it in a crash is harmless.
            must_sync=voted or snapshot is not None or bool(entries),
            # Not while our own new term or vote is unsynced: an append of a term this node
            # could forget in a crash would let it lead that term twice.
            early=0 if voted else len(self._early),
        )
        self._outbox, self._early = [], []
        self._reported, self._persisted = soft, hard
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready) -> None:
        """The driver persisted, sent and applied `ready` (ready.py, steps 1-3)."""
        if ready is not self._outstanding:
            raise RaftUsageError("advance() takes the Ready last returned by ready()")
        self._outstanding = None
        if ready.snapshot is not None:
            self._applied = max(self._applied, ready.snapshot.index)
        if ready.committed:
            self._applied = max(self._applied, ready.committed[-1].index)
        written = ready.entries[-1].index if ready.entries else ready.snapshot.index if ready.snapshot else 0
        # Entries cut by a newer leader since ready() are not ours any more, durable or not.
        stable = min(written, self._unstable_from - 1)
        if stable > self._stable:
            self._stable = stable
            self._maybe_commit(self._now)

    def compact(self, index: int, data: bytes) -> Compaction:
        """Record a snapshot of the state applied through `index` and shorten the log.

        The driver persists the returned Compaction (snapshot, then drops stored entries up to
        its base). `index` must be applied and newer than the current snapshot.
        """
        if index > self._applied:
            raise RaftUsageError(f"cannot snapshot at {index}: only {self._applied} is applied")
        if self._snapshot is not None and index <= self._snapshot.index:
            raise RaftUsageError(f"a snapshot at {self._snapshot.index} already covers {index}")
        term = self._log.term_at(index)
        if term is None:
            raise RaftUsageError(f"entry {index} is not in the log (base {self._log.base_index})")
        self._snapshot = Snapshot(index, term, self._configs.at(index), data)
        through = index - self.config.snapshot_trailing_entries
        through_term = self._log.term_at(through)
        if through > self._log.base_index and through_term is not None:
            self._log.compact(through, through_term)
            self._configs.compact(through)
        log.info("event=raft_snapshot node=%s index=%d term=%d bytes=%d base=%d",
                 self.id, index, term, len(data), self._log.base_index)
        return Compaction(self._snapshot, self._log.base_index, self._log.base_term)

    # -- elections -------------------------------------------------------------------------

    def _campaign(self, now: float) -> None:
        self._role = Role.PRE_CANDIDATE
        self._leader = ""
        self._votes = {self.id: True}
        self._reset_election_timer(now)
        if has_majority(self._granted(), self._configuration.voters):
            self._become_candidate(now)
            return
        self._ask_votes(self._term + 1, pre=True)

    def _become_candidate(self, now: float) -> None:
        self._role = Role.CANDIDATE
        self._term += 1
        self._vote = self.id
        self._votes = {self.id: True}
        self._reset_election_timer(now)
        if has_majority(self._granted(), self._configuration.voters):
            self._become_leader(now)
            return
        self._ask_votes(self._term, pre=False)

    def _ask_votes(self, term: int, pre: bool) -> None:
        request = VoteRequest(term, self._log.last_index, self._log.last_term, pre)
        for voter in sorted(self._configuration.voters - {self.id}):
            self._send(voter, request)

    def _become_leader(self, now: float) -> None:
        self._role = Role.LEADER
        self._leader = self.id
        self._votes = {}
        self._leadership = Leadership(self.config, self.id, self._term, now, self._log.last_index + 1)
        self._leadership.sync(self._configuration.members(), self._log.last_index)
        log.info("event=raft_leader node=%s term=%d last_index=%d", self.id, self._term, self._log.last_index)
        self._append_own(now, EntryKind.NOOP, b"", bounded=False)

    def _become_follower(self, now: float, term: int, leader: str) -> None:
        if term > self._term:
            self._term = term
            self._vote = ""
        if self._role is not Role.REMOVED:
            self._role = Role.FOLLOWER
        self._leader = leader
        self._votes = {}
        self._leadership = None
        self._reset_election_timer(now)

    def _on_vote_request(self, now: float, sender: str, m: VoteRequest) -> None:
        if m.term < self._term or (m.pre and m.term == self._term):
            self._send(sender, VoteResponse(self._term, False, m.pre))
            return
        if self._role is Role.LEADER or now < self._quiet_until:
            return  # a leader is alive as far as we know: neither vote nor move our term
        # A node catching up may lack entries it acknowledged before it lost its log: no vote.
        up_to_date = self._log.is_up_to_date(m.last_index, m.last_term) and not self._catching_up
        if m.pre:
            self._send(sender, VoteResponse(m.term if up_to_date else self._term, up_to_date, True))
            return
        if m.term > self._term:
            self._become_follower(now, m.term, "")
        can_vote = self._vote == sender or (self._vote == "" and self._leader == "")
        granted = can_vote and up_to_date
        if granted:
            self._vote = sender
            self._reset_election_timer(now)
        self._send(sender, VoteResponse(self._term, granted, False))

    def _on_vote_response(self, now: float, sender: str, m: VoteResponse) -> None:
        if m.term > self._term and not (m.pre and m.granted):
            self._become_follower(now, m.term, "")
            return
        if self._role is Role.PRE_CANDIDATE and m.pre and (not m.granted or m.term == self._term + 1):
            self._count_vote(now, sender, m.granted, self._become_candidate)
        elif self._role is Role.CANDIDATE and not m.pre and m.term == self._term:
            self._count_vote(now, sender, m.granted, self._become_leader)

    def _count_vote(self, now: float, sender: str, granted: bool, win: Callable[[float], None]) -> None:
        voters = self._configuration.voters
        if sender not in voters:
            return
        self._votes.setdefault(sender, granted)
        if has_majority(self._granted(), voters):
            win(now)
        elif has_majority((v for v, ok in self._votes.items() if not ok), voters):
            self._become_follower(now, self._term, "")

    def _granted(self) -> list[str]:
        return [voter for voter, ok in self._votes.items() if ok]

    # -- follower side of replication ------------------------------------------------------

    def _accept_leader(self, now: float, sender: str, term: int) -> bool:
        """Common start of AppendEntries and InstallSnapshot: False if the sender is stale."""
        if term < self._term:
            # Tell a stale leader our term so it steps down (its echo counts for no lease).
            self._send(sender, AppendResponse(self._term, False, 0, -1.0))
            return False
        if term > self._term or self._role is not Role.FOLLOWER:
            if self._role is Role.LEADER and term == self._term:
                log.error("event=raft_two_leaders node=%s other=%s term=%d", self.id, sender, term)
                return False
            self._become_follower(now, term, sender)
        self._leader = sender
        self._quiet_until = now + self.config.election_timeout_min
        self._reset_election_timer(now)
        return True

    def _on_append(self, now: float, sender: str, m: AppendEntries) -> None:
        if not self._accept_leader(now, sender, m.term):
            return
        prev_index, prev_term, entries = m.prev_index, m.prev_term, m.entries
        if prev_index < self._commit:
            # Our entries up to commit are committed, hence the leader's too (Raft §5.4):
            # match from there (etcd does the same). Unless the logs forked, which only a
            # forced recovery elsewhere can do (raft/recovery.py): then refuse, loudly.
            if self._forked_from(prev_index, prev_term, entries, sender):
                return
            skip = self._commit - prev_index
            if skip >= len(entries):
                # Acknowledge what this message showed to match, not our commit: after a forced
                # recovery our committed entries past it may differ from the leader's, and an
                # acknowledgement of them would count toward its commits.
                if m.ack:
                    self._send(sender, AppendResponse(self._term, True, prev_index + len(entries),
                                                      m.sent_at))
                self._check_caught_up(m)
                return
            entries = entries[skip:]
            prev_index = self._commit
            prev_term = self._log.term_at(prev_index) or 0
        if self._log.term_at(prev_index) != prev_term:
            hint = self._log.find_conflict_by_term(min(prev_index, self._log.last_index), prev_term)
            self._send(sender, AppendResponse(self._term, False, m.prev_index, m.sent_at, hint,
                                              self._log.term_at(hint) or 0))
            return
        conflict = self._log.find_conflict(prev_index, entries)
        if conflict is not None:
            if conflict <= self._commit:
                self.forked_at = conflict
                log.error("event=raft_committed_conflict node=%s index=%d commit=%d leader=%s",
                          self.id, conflict, self._commit, sender)
                return
            self._write_from(conflict, entries[conflict - prev_index - 1:])
        last_new = prev_index + len(entries)
        self.forked_at = None
        self._commit_to(now, min(m.commit, last_new))
        self._check_caught_up(m)
        if m.ack:
            self._send(sender, AppendResponse(self._term, True, last_new, m.sent_at))

    def _check_caught_up(self, m: AppendEntries) -> None:
        """End catching up once our commit reaches the leader's, at an entry of its term.

        Every entry committed before the leader's term is in its log before that entry (Leader
        Completeness), and every entry it committed on our lost acknowledgements is at or below
        its commit: the leader counted them before our first reply after the loss told it our
        log was gone (Leadership.on_reply), and we accept nothing of it before that reply.
        """
        if (self._catching_up and self._commit >= m.commit
                and self._log.term_at(self._commit) == m.term):
            self._catching_up = False
            log.info("event=raft_caught_up node=%s term=%d commit=%d: votes again",
                     self.id, self._term, self._commit)

    def _forked_from(self, prev_index: int, prev_term: int, entries: Sequence[Entry], sender: str) -> bool:
        """Whether the leader's entries up to our commit differ from ours (logged once per term)."""
        theirs = [(prev_index, prev_term)] + [(e.index, e.term) for e in entries if e.index <= self._commit]
        forked = next((i for i, t in theirs if self._log.term_at(i) not in (None, t)), None)
        if forked is None:
            return False
        self.forked_at = forked
        if self._fork_logged != self._term:
            self._fork_logged = self._term
            log.error("event=raft_committed_conflict node=%s index=%d commit=%d leader=%s term=%d "
                      "hint=this_log_forked_from_the_leader's_(a_forced_recovery?)_stop_this_node_and_"
                      "run_meshkp_recover_--rejoin", self.id, forked, self._commit, sender, self._term)
        return True

    def _on_snapshot(self, now: float, sender: str, m: InstallSnapshot) -> None:
        if not self._accept_leader(now, sender, m.term):
            return
        snap = m.snapshot
        if snap.index <= self._commit:
            self._send(sender, AppendResponse(self._term, True, self._commit, m.sent_at))
            return
        if self._log.term_at(snap.index) == snap.term:
            self._commit_to(now, snap.index)  # our log already holds it: no need to restore
        else:
            self._log = RaftLog(snap.index, snap.term)
            self._stable = min(self._stable, snap.index)
            self._snapshot = snap
            self._received_snapshot = snap
            self._unstable_from = snap.index + 1
            self._handed = snap.index
            self._commit = snap.index
            self._configs = ConfigHistory(snap.index, snap.configuration)
            self.forked_at = None
            log.info("event=raft_snapshot_installed node=%s index=%d term=%d leader=%s",
                     self.id, snap.index, snap.term, sender)
            self._check_removed()
        self._send(sender, AppendResponse(self._term, True, snap.index, m.sent_at))

    def _on_refused(self, sender: str, m: Refused) -> None:
        if sender in self._configuration.members() and m.reason == REMOVED_REASON:
            log.error("event=raft_removed node=%s told_by=%s: this node was removed from the "
                      "cluster for good; wipe its data directory to rejoin", self.id, sender)
            self._become_removed()

    # -- leader side of replication --------------------------------------------------------

    def _append_own(self, now: float, kind: EntryKind, data: bytes, bounded: bool = True) -> FencingToken:
        lead = self._require_leader()
        if bounded and self._log.last_index - self._commit >= self.config.max_uncommitted_entries:
            raise ProposalRefused(f"{self._log.last_index - self._commit} entries wait for commit "
                                  "(a majority of voters is unreachable?); retry later")
        entry = Entry(self._log.last_index + 1, self._term, kind, data)
        self._log.append(entry)
        if kind is EntryKind.CONFIG:
            self._configs.add(entry.index, ConfigChange.decode(data).configuration)
            lead.sync(self._configuration.members(), self._log.last_index)
        self._maybe_commit(now)
        for peer in list(lead.progress):
            if lead.wants_entries(peer):
                self._send_append(peer, now)
        return entry.token

    def _on_append_response(self, now: float, sender: str, m: AppendResponse) -> None:
        if m.term > self._term:
            self._become_follower(now, m.term, "")
            return
        lead = self._leadership
        if lead is None or m.term < self._term:
            return
        reaction = lead.on_reply(sender, now, m, self._log)
        if reaction.matched_more:
            self._maybe_commit(now)
        if reaction.send and self._leadership is lead and sender in lead.progress:
            self._send_append(sender, now)

    def _send_append(self, peer: str, now: float, notify: bool = False) -> None:
        lead = self._leadership
        if lead is None:
            return
        message = lead.message_for(peer, now, self._log, self._commit, self._snapshot, notify)
        if message is not None:
            self._send(peer, message)

    def _maybe_commit(self, now: float) -> None:
        lead = self._leadership
        voters = self._configuration.voters
        if lead is None or not voters:
            return
        index = lead.commit_candidate(voters, self._stable)
        if index > self._commit and self._log.term_at(index) == self._term:
            self._commit_to(now, index)
            if self._leadership is lead:
                for peer in lead.progress:  # followers learn the new commit index at once
                    self._send_append(peer, now, notify=True)

    # -- shared helpers --------------------------------------------------------------------

    def _commit_to(self, now: float, index: int) -> None:
        if index <= self._commit:
            return
        before = self._committed_configuration()
        self._commit = index
        committed = self._committed_configuration()
        if self._role is Role.LEADER and committed is not before:
            # Tell members removed for good, now that it is final (they get no more entries).
            earlier = set(before.removed)
            for gone in committed.removed:
                if gone != self.id and gone not in earlier:
                    self._send(gone, Refused(self._term, REMOVED_REASON))
        if self._role is Role.LEADER and self.id not in committed.voters:
            log.info("event=raft_step_down reason=not_a_voter node=%s term=%d", self.id, self._term)
            self._become_follower(now, self._term, "")
        self._check_removed()

    def _check_removed(self) -> None:
        if self.id in self._committed_configuration().removed and self._role is not Role.REMOVED:
            log.warning("event=raft_removed node=%s: removed from the cluster for good", self.id)
            self._become_removed()

    def _become_removed(self) -> None:
        self._role = Role.REMOVED
        self._leader = ""
        self._votes = {}
        self._leadership = None

    def _write_from(self, index: int, entries: Sequence[Entry]) -> None:
        self._log.replace_from(index, entries)
        self._unstable_from = min(self._unstable_from, index)
        self._stable = min(self._stable, index - 1)
        self._configs.truncate(index)
        for entry in entries:
            if entry.kind is EntryKind.CONFIG:
                self._configs.add(entry.index, ConfigChange.decode(entry.data).configuration)

    @property
    def _configuration(self) -> Configuration:
        return self._configs.latest

    def _committed_configuration(self) -> Configuration:
        return self._configs.at(self._commit)

    def _reset_election_timer(self, now: float) -> None:
        low, high = self.config.election_timeout_min, self.config.election_timeout_max
        self._election_deadline = now + self._rng.uniform(low, high)

    def _require_leader(self) -> Leadership:
        if self._role is Role.REMOVED:
            raise ProposalRefused("this node was removed from the cluster; it must rejoin empty")
        if self._leadership is None:
            known = f"; the leader is {self._leader}" if self._leader else "; no leader is known"
            raise NotLeader(f"node {self.id} is not the leader{known}", self._leader)
        return self._leadership

    def _send(self, to: str, message: RaftMessage) -> None:
        message = dataclasses.replace(message, generation=self.generation)
        if self._leadership is not None and isinstance(message, (AppendEntries, InstallSnapshot)):
            # A leader's append promises nothing about its own disk (its term and vote were
            # synced before it asked for votes), so it may leave before the write: the leader
            # counts its entries toward commit only once durable (`_stable`).
            self._early.append(Outgoing(to, message))
        else:
            self._outbox.append(Outgoing(to, message))

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self._commit, self._catching_up)

    def _soft_state(self) -> SoftState:
        return SoftState(self._role, self._leader, self._term)



def _history(snapshot: Snapshot | None, log_: RaftLog) -> ConfigHistory:
    """The configurations of a restored log: the snapshot's, then each later CONFIG entry."""
    history = ConfigHistory(snapshot.index, snapshot.configuration) if snapshot else ConfigHistory()
    after = snapshot.index if snapshot else 0
    for entry in log_.entries(log_.base_index + 1):
        if entry.kind is EntryKind.CONFIG and entry.index > after:
            history.add(entry.index, ConfigChange.decode(entry.data).configuration)
    return history
