"""ControlPlane: the API the rest of the node uses to read and change the cluster policy.

It owns the RaftDriver (loop.py) and the applied PolicyState, and adds what a client's change
needs on top of the log: validation, forwarding to the leader (ProposeRequest/ProposeReply),
waiting until the entry is applied HERE (read-your-writes), time bounds, and the autopilot
that adds, promotes and replaces members from SWIM health (meshkp/control/autopilot.py).

    plane.state                            # PolicyState applied on this node
    plane.observe(fn)                      # fn(Applied) per applied command, in log order
    await plane.propose(SetLimits(...), actor="alice")   # -> Applied, or a ControlError
    plane.leader(now)                      # (leader id | None, authoritative)
    plane.status()                         # GET /cluster/consensus
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from meshkp.clock import Scheduler, TimerHandle
from meshkp.control.autopilot import Health, next_change
from meshkp.control.config import ControlConfig
from meshkp.control.driver.loop import ControlStorage, ControlTransport, RaftDriver
from meshkp.control.policy.apply import Applied, apply_entry, check
from meshkp.control.policy.commands import ChangeMembership, Command, Proposal, decode_proposal
from meshkp.control.policy.snapshot import decode_state, encode_state
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.membership import Generation, MembershipChange
from meshkp.control.raft.messages import Message, ProposeReply, ProposeRequest
from meshkp.control.raft.ready import SoftState
from meshkp.control.raft.types import Entry, EntryKind, FencingToken, Restored, Role, Snapshot
from meshkp.errors import ControlUnavailable, InvalidCommand, NotLeader, ProposalRefused, WireError
from meshkp.net.stats import NetStats

log = logging.getLogger("meshkp.control")

T = TypeVar("T")
Observer = Callable[[Applied], None]
HealthSource = Callable[[], Mapping[str, Health]]

# How long propose() waits by default for its change to apply here. A healthy cluster applies
# in one round trip; an election takes up to ~2 election timeouts. Past it: 503.
DEFAULT_PROPOSE_TIMEOUT = 5.0
# Applied entries remembered by index, so that a proposal whose entry applied before its
# ProposeReply arrived (messages may be reordered) still finds how it applied.
RECENT_APPLIED = 256
# Bounded pending forwarded proposals (each holds a future): more is a client flood.
MAX_PENDING_FORWARDS = 1024
# Commit latencies kept for the p99 of /cluster/performance (a few minutes of busy policy work).
COMMIT_SAMPLES = 256


@dataclass
class _Waiter:
    """A proposal appended at `token`; resolved when this node applies that index."""

    token: FencingToken
    future: asyncio.Future[Applied]


class ProposalLost(ControlUnavailable):
    """The leader that took the proposal lost it in a leader change (another entry applied there)."""


class ControlPlane:
    """One node's control plane; `start()`, then read `state` and `propose()` changes."""

    def __init__(
        self,
        node_id: str,
        config: ControlConfig,
        storage: ControlStorage,
        restored: Restored,
        transport: ControlTransport,
        clock: Scheduler,
        *,
        rng: random.Random | None = None,
        health: HealthSource | None = None,
        wall_ms: Callable[[], int] | None = None,
        net_stats: NetStats | None = None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.clock = clock
        self._health = health
        self.net_stats = net_stats  # the transport's frame and byte counters, if it has them
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._state = PolicyState()
        self._observers: list[Observer] = []
        self.core = RaftCore(config, node_id, clock.now(), rng=rng or random.Random(),
                             restored=restored)
        self.driver = RaftDriver(self.core, storage, transport, clock, self,
                                 on_message=self._on_message, on_soft_state=self._on_soft_state)
        self.transport = transport
        self._waiters: dict[int, list[_Waiter]] = {}
        self._recent: OrderedDict[int, Applied] = OrderedDict()
        self._forwards: dict[int, asyncio.Future[ProposeReply]] = {}
        self._request_ids = itertools.count(1)
        self._autopilot_timer: TimerHandle | None = None
        self._autopilot_busy = False
        # Counters (Prometheus, status).
        self.leader_changes = 0
        self.proposals_committed = 0
        self.proposals_failed = 0
        self.observer_errors = 0
        # Seconds from propose() to applied here, of the last changes proposed on this node
        # (GET /cluster/performance: the consensus commit latency).
        self.commit_seconds: deque[float] = deque(maxlen=COMMIT_SAMPLES)
        self._last_leader = ""
        # Last: install() resolves waiters and notifies observers, so every field must exist.
        if restored.snapshot is not None:
            self.install(restored.snapshot)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.driver.start()
        self._arm_autopilot()

    async def stop(self) -> None:
        if self._autopilot_timer is not None:
            self._autopilot_timer.cancel()
            self._autopilot_timer = None
        await self.driver.stop()
        for waiters in self._waiters.values():
            for w in waiters:
                if not w.future.done():
                    w.future.set_exception(ControlUnavailable("the node is stopping", self.core.leader))
        self._waiters.clear()
        for fut in self._forwards.values():
            if not fut.done():
                fut.cancel()
        self._forwards.clear()

    # -- reads -------------------------------------------------------------------------------

    @property
    def state(self) -> PolicyState:
        """The policy state applied on this node (possibly behind the leader's)."""
        return self._state

    def observe(self, fn: Observer) -> None:
        """Call fn(applied) on the event loop after each applied COMMAND entry, in log order.

        That includes entries replayed from the log at start. fn also gets the whole state as
        an `Applied` whose `proposal` is None (`applied.state` is the new state, `token` its
        last entry): once when it is registered, if anything was applied before (the restored
        snapshot and replayed entries), and once each time a snapshot from the leader replaces
        the state. Such a call means "reconcile everything from applied.state". An exception
        in fn is logged and counted; it does not stop the log nor the other observers.
        """
        self._observers.append(fn)
        if self._state.token.index > 0:
            self._notify_one(fn, Applied(self._state, self._state.token, accepted=True))

    @property
    def is_leader(self) -> bool:
        """Whether this node leads now (a lease is not required: callers propose, which is safe)."""
        return self.core.role is Role.LEADER

    def leader(self, now: float | None = None) -> tuple[str | None, bool]:
        """(leader id or None, authoritative). Authoritative only on the leader, with its lease:
        then no other leader exists at `now`. Elsewhere it is the last leader heard of."""
        now = self.clock.now() if now is None else now
        if self.core.is_leader_with_lease(now):
            return self.node_id, True
        return (self.core.leader or None), False

    def status(self) -> dict[str, object]:
        """The GET /cluster/consensus document."""
        now = self.clock.now()
        core = self.core
        st = core.status(now)
        cfg = st.configuration
        leader, authoritative = self.leader(now)

        def member(node: str) -> dict[str, object]:
            peer = st.peers.get(node)
            if node == self.node_id:
                return {"id": node, "match": st.last_index, "last_contact": 0.0, "self": True}
            contact = peer.last_contact if peer is not None else None
            return {"id": node, "match": peer.match if peer else None,
                    "last_contact": round(contact, 3) if contact is not None else None,
                    "state": peer.state.name.lower() if peer else None}

        return {
            "node": self.node_id, "role": st.role.name.lower(), "term": st.term,
            "leader": leader, "authoritative": authoritative,
            "commit_index": st.commit, "applied_index": st.applied, "last_index": st.last_index,
            "snapshot_index": st.snapshot_index, "lease_remaining": round(st.lease_remaining, 3),
            "voters": [member(n) for n in sorted(cfg.voters)],
            "learners": [member(n) for n in sorted(cfg.learners)],
            "removed": sorted(cfg.removed),
            "generation": _generation(cfg.generation), "newest_generation": _generation(core.generation),
            "superseded": core.superseded, "generation_refused": core.generation_refused,
            "forked_at": core.forked_at, "catching_up": core.catching_up,
            "policy_version": self._state.version, "policy_token": str(self._state.policy_token),
            "driver_errors": self.driver.errors, "snapshots_installed": self.driver.snapshots_installed,
            "net": self.net_stats.snapshot() if self.net_stats is not None else None,
        }

    # -- changes -----------------------------------------------------------------------------

    async def propose(self, command: Command, actor: str, *, timeout: float | None = None,
                      expect_version: int | None = None) -> Applied:
        """Commit `command` through the log and return how it applied on THIS node.

        Validated first (`check` against the applied state: InvalidCommand, a 4xx, nothing
        proposed). A follower forwards it to the leader. Returns once this node has applied
        the entry, so the caller reads its own change. ControlUnavailable (503, with the known
        leader and a retry delay) when no leader is known, the leader cannot commit (a
        minority), or nothing applied within `timeout` seconds. `applied.accepted` is False
        when apply ignored it (stale expect_version...; the audit entry says why).
        """
        timeout = DEFAULT_PROPOSE_TIMEOUT if timeout is None else timeout
        proposal = Proposal(command, actor, self.node_id, self._hlc(), expect_version)
        started = self.clock.now()
        deadline = started + timeout
        try:
            if self.core.forked_at is not None:
                # Forwarded, the change would commit elsewhere and never apply here: say why now.
                raise ControlUnavailable(
                    f"this node's control log forked from its leader's at index {self.core.forked_at} "
                    "(a forced recovery elsewhere): it applies no change until an operator runs "
                    "`meshkp recover --rejoin` on it; send the change to another node",
                    self.core.leader, self._retry_after())
            if isinstance(command, ChangeMembership):
                proposal.validate()
            else:
                check(self._state, proposal)
            applied = await self._propose_until(proposal, proposal.encode(), deadline)
        except Exception:
            self.proposals_failed += 1
            raise
        self.proposals_committed += 1
        self.commit_seconds.append(self.clock.now() - started)
        return applied

    async def _propose_until(self, proposal: Proposal, data: bytes, deadline: float) -> Applied:
        while True:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                # Indeterminate, as any consensus timeout: a forward that reached a leader
                # stalled (paused, cut off) is appended when it reads it.
                raise self._unavailable("no leader committed the change in time; if it reached a "
                                        "leader it may still apply: check GET /cluster/audit "
                                        "before sending it again")
            token = await self._append(proposal, data, remaining)
            if token is None:  # no leader yet: wait for an election, then try again
                await self._wait(min(remaining, self.config.heartbeat_interval * 2))
                continue
            try:
                return await self._await_applied(token, deadline - self.clock.now())
            except ProposalLost:
                log.info("event=control_proposal_lost node=%s token=%s action=retry", self.node_id, token)
                continue

    async def _append(self, proposal: Proposal, data: bytes, remaining: float) -> FencingToken | None:
        """Append on the leader (here, or forwarded); its token, or None if no leader is known."""
        if self.core.role is Role.LEADER:
            token = self._append_here(proposal, data)
            self.driver.kick()
            return token
        leader = self.core.leader
        if not leader:
            return None
        if len(self._forwards) >= MAX_PENDING_FORWARDS:
            raise self._unavailable("too many changes waiting for the leader")
        request_id = next(self._request_ids)
        future: asyncio.Future[ProposeReply] = asyncio.get_running_loop().create_future()
        self._forwards[request_id] = future
        self.transport.send(leader, ProposeRequest(request_id, data))
        try:
            reply = await self._bounded(future, min(remaining, self.config.election_timeout_max))
        finally:
            self._forwards.pop(request_id, None)
        if reply is None:
            if self.core.leader == leader:
                # The request is in the leader's socket: a leader that was only stalled
                # (SIGSTOP, a pause) appends it once it runs again.
                raise self._unavailable(f"the leader {leader} did not answer in time; the change "
                                        "may still apply when it does: check GET /cluster/audit "
                                        "before sending it again")
            return None  # the leader changed meanwhile: try the new one
        if reply.error:
            if reply.error.startswith("invalid:"):
                raise InvalidCommand(reply.error.removeprefix("invalid:").strip())
            if reply.error.startswith("not-leader"):
                return None
            raise ControlUnavailable(f"the leader {leader} refused: {reply.error}",
                                     reply.leader or leader, self._retry_after())
        return FencingToken(reply.term, reply.index)

    def _append_here(self, proposal: Proposal, data: bytes) -> FencingToken:
        """core.propose / propose_change on the leader; ControlError as the core raises it."""
        now = self.clock.now()
        try:
            command = proposal.command
            if isinstance(command, ChangeMembership):
                return self.core.propose_change(
                    now, MembershipChange(command.op, command.node),
                    actor=proposal.actor, origin=proposal.origin, hlc=proposal.hlc)
            return self.core.propose(now, data)
        except ProposalRefused as exc:
            raise ControlUnavailable(str(exc), self.node_id, self._retry_after()) from None

    async def _await_applied(self, token: FencingToken, remaining: float) -> Applied:
        if self._state.token.index >= token.index:
            # Applied before its position reached us (a reordered reply), or under a snapshot.
            seen = self._recent.get(token.index)
            if seen is None:
                raise self._unavailable(f"the change at {token} may have applied; check GET /cluster/audit")
            if seen.token != token:
                raise ProposalLost(f"the change at {token} was lost in a leader change", self.core.leader)
            return seen
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(token.index, []).append(_Waiter(token, future))
        result = await self._bounded(future, remaining)
        if result is None:
            waiters = self._waiters.get(token.index, [])
            self._waiters[token.index] = [w for w in waiters if w.future is not future]
            if not self._waiters[token.index]:
                del self._waiters[token.index]
            raise self._unavailable(f"the change at {token} did not apply in time (no majority?); "
                                    "it may still apply: check GET /cluster/audit")
        return result

    async def _bounded(self, future: asyncio.Future[T], seconds: float) -> T | None:
        """The future's result (or its exception), or None after `seconds` of the injected clock."""
        if not future.done() and seconds > 0:
            expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            timer = self.clock.call_later(seconds, lambda: _resolve(expired))
            try:
                await asyncio.wait((future, expired), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                expired.cancel()
        return future.result() if future.done() else None

    async def _wait(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.clock.call_later(seconds, lambda: _resolve(future))
        try:
            await future
        finally:
            timer.cancel()

    # -- the state machine the driver feeds (loop.Applier) -------------------------------------

    def applied_index(self) -> int:
        return self._state.token.index

    def encode(self) -> bytes:
        return encode_state(self._state)

    def install(self, snapshot: Snapshot) -> None:
        try:
            state = decode_state(snapshot.data)
        except WireError:
            log.exception("event=control_snapshot_corrupt node=%s index=%d", self.node_id, snapshot.index)
            raise
        self._state = state
        log.info("event=control_snapshot_installed node=%s index=%d version=%d",
                 self.node_id, snapshot.index, state.version)
        for index in sorted(i for i in self._waiters if i <= snapshot.index):
            for w in self._waiters.pop(index):
                if w.future.done():
                    continue
                if w.token.term == snapshot.term:  # log matching: the leader of that term wrote both
                    w.future.set_result(Applied(state, snapshot.token, accepted=True))
                else:
                    w.future.set_exception(self._unavailable(
                        f"the change at {w.token} is covered by a snapshot; check GET /cluster/audit"))
        self._fail_overtaken(snapshot.token)
        self._notify(Applied(state, snapshot.token, accepted=True))

    def _fail_overtaken(self, committed: FencingToken) -> None:
        """Fail the waiters whose entry can no longer commit, so that propose retries them.

        A committed entry of a later term at an earlier index than a waiter's means that
        waiter's entry is in no future leader's log: a leader's entries before one of its own
        have lower or equal terms (Log Matching), and every future leader holds the committed
        entry (Leader Completeness). Nothing may ever be appended at the waiter's index again,
        so without this it would wait for its deadline.
        """
        for index in [i for i in self._waiters if i > committed.index]:
            left = []
            for w in self._waiters[index]:
                if w.future.done():
                    continue
                if w.token.term < committed.term:
                    w.future.set_exception(ProposalLost(
                        f"the change at {w.token} was overtaken by {committed}", self.core.leader))
                else:
                    left.append(w)
            if left:
                self._waiters[index] = left
            else:
                del self._waiters[index]

    def apply(self, entry: Entry) -> None:
        applied = apply_entry(self._state, entry)
        self._state = applied.state
        self._recent[entry.index] = applied
        while len(self._recent) > RECENT_APPLIED:
            self._recent.popitem(last=False)
        for w in self._waiters.pop(entry.index, []):
            if w.future.done():
                continue
            if w.token.term == entry.term:
                w.future.set_result(applied)
            else:
                w.future.set_exception(ProposalLost(f"the change at {w.token} was lost in a leader change",
                                                    self.core.leader))
        self._fail_overtaken(entry.token)
        if entry.kind is EntryKind.COMMAND:
            self._notify(applied)

    def _notify(self, applied: Applied) -> None:
        for fn in list(self._observers):
            self._notify_one(fn, applied)

    def _notify_one(self, fn: Observer, applied: Applied) -> None:
        try:
            fn(applied)
        except Exception:
            self.observer_errors += 1
            log.exception("event=control_observer_failed node=%s token=%s", self.node_id, applied.token)

    # -- messages between drivers -------------------------------------------------------------

    def _on_message(self, sender: str, message: Message) -> None:
        if isinstance(message, ProposeRequest):
            self._on_propose_request(sender, message)
        elif isinstance(message, ProposeReply):
            future = self._forwards.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)

    def _on_propose_request(self, sender: str, m: ProposeRequest) -> None:
        if self.core.role is not Role.LEADER:
            self.transport.send(sender, ProposeReply(m.request_id, error="not-leader",
                                                     leader=self.core.leader))
            return
        try:
            proposal = decode_proposal(m.data)
            token = self._append_here(proposal, m.data)
        except InvalidCommand as exc:
            reply = ProposeReply(m.request_id, error=f"invalid: {exc}", leader=self.node_id)
        except NotLeader as exc:
            reply = ProposeReply(m.request_id, error="not-leader", leader=exc.leader)
        except ControlUnavailable as exc:
            reply = ProposeReply(m.request_id, error=str(exc), leader=self.node_id)
        else:
            reply = ProposeReply(m.request_id, token.term, token.index)
            self.driver.kick()
        self.transport.send(sender, reply)

    def _on_soft_state(self, soft: SoftState) -> None:
        if soft.leader != self._last_leader:
            self._last_leader = soft.leader
            if soft.leader:
                self.leader_changes += 1
            log.info("event=control_leader node=%s leader=%s term=%d role=%s", self.node_id,
                     soft.leader or "-", soft.term, soft.role.name.lower())
        if soft.role is Role.REMOVED:
            log.error("event=control_removed node=%s hint=this_node_was_removed_for_good_"
                      "wipe_its_data_dir_to_rejoin_as_a_new_node", self.node_id)

    # -- autopilot ---------------------------------------------------------------------------

    def _arm_autopilot(self) -> None:
        if self._health is None:
            return
        interval = max(self.config.heartbeat_interval * 5, 0.25)
        self._autopilot_timer = self.clock.call_later(interval, self._autopilot)

    def _autopilot(self) -> None:
        self._arm_autopilot()
        if self._health is None or self.core.role is not Role.LEADER or self._autopilot_busy:
            return
        now = self.clock.now()
        change = next_change(self.config, self.core.status(now), self._health(), now)
        if change is None:
            return
        try:
            self.core.propose_change(now, change, actor="autopilot", origin=self.node_id, hlc=self._hlc())
        except (ProposalRefused, InvalidCommand, NotLeader) as exc:
            log.debug("event=autopilot_wait node=%s change=%s reason=%s", self.node_id, change, exc)
            return
        log.info("event=autopilot_change node=%s op=%s member=%s", self.node_id,
                 change.op.name.lower(), change.node)
        self.driver.kick()

    # -- helpers -----------------------------------------------------------------------------

    def _hlc(self) -> int:
        return max(0, self._wall_ms()) << 16

    def _retry_after(self) -> float:
        return round(self.config.election_timeout_max, 1)

    def _unavailable(self, why: str) -> ControlUnavailable:
        leader = self.core.leader
        where = f"last known leader: {leader}" if leader else "no leader known"
        return ControlUnavailable(f"{why} ({where}); retry later", leader, self._retry_after())


def _generation(generation: Generation | None) -> dict[str, object] | None:
    return None if generation is None else {"cluster": generation.cluster, "epoch": generation.epoch}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
