"""How news changes the member table: alive, suspect, dead and leave (memberlist state.go).

Each handler checks the incarnation rules of SWIM §4.2: news about a member counts only if its
incarnation is at least as new as ours (strictly newer for alive); news that we are suspect or
dead makes us refute with a higher incarnation. Accepted news is re-broadcast through the
piggyback queue, and every status change becomes a MemberChanged effect and a delegate call.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from meshkp.net.addr import Addr
from meshkp.swim.awareness import Awareness
from meshkp.swim.broadcast import BroadcastQueue
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import Delegate, Effect, MemberChanged, SendUdp
from meshkp.swim.fields import MAX_COUNTER, MAX_INCARNATION_JUMP
from meshkp.swim.formulas import suspicion_confirmations_wanted, suspicion_timeout
from meshkp.swim.messages import (
    COMPOUND_HEADER,
    FRAME_OVERHEAD,
    Alive,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Suspect,
    bundle,
    part_size,
)
from meshkp.swim.state import Member, MemberTable
from meshkp.swim.suspicion import Suspicion
from meshkp.swim.types import Status

log = logging.getLogger("meshkp.swim")

# Ping sequence numbers: a random epoch per process above a wrapping counter, 63 bits in all
# (the wire maximum of a counter).
SEQ_COUNTER_BITS = 32
SEQ_COUNTER_MASK = (1 << SEQ_COUNTER_BITS) - 1
SEQ_EPOCH_BITS = 31
# Refused acks are logged at most this often (seconds of the core's clock): a flood of forged
# acks is counted in full (SwimStats.acks_refused) but cannot fill the log.
REFUSAL_LOG_INTERVAL = 1.0


def vouched(sender: str | None, target: str, helpers: frozenset[str]) -> bool:
    """An ack for a probe of `target` may come from `sender`: the target itself, or a member we
    asked to ping-req it (None: the transport proves no sender, as in cipher-free simulations)."""
    return sender is None or sender == target or sender in helpers


def boot_epoch() -> int:
    """A random epoch for this process's ping sequence numbers, top bit set.

    From the OS, not the core's rng: only equality of sequence numbers matters, so seeded
    simulations still replay the same, and the set top bit keeps every sequence number the same
    encoded size (frames, hence piggyback room, do not depend on the draw).
    """
    top = 1 << (SEQ_EPOCH_BITS - 1)
    return top | int.from_bytes(os.urandom(4), "big") % top


@dataclass(slots=True)
class SwimStats:
    """Counters for metrics and tests."""

    probes: int = 0
    probe_failures: int = 0
    indirect_probes: int = 0
    suspicions: int = 0
    confirmations: int = 0
    refutations: int = 0
    declared_dead: int = 0
    address_conflicts: int = 0
    misdirected_pings: int = 0
    relays_refused: int = 0
    acks_mismatched: int = 0
    acks_refused: int = 0  # acks sent by a node that is neither the member probed nor a helper
    nacks_refused: int = 0  # nacks from a node not asked to probe, or a second one from a helper
    push_pulls_truncated: int = 0
    incarnation_jumps_refused: int = 0
    members_refused: int = 0  # new members not admitted: the table is full (max_members)


class Membership:
    """The member table plus the machinery that keeps it current."""

    def __init__(
        self,
        config: SwimConfig,
        local: Member,
        delegate: Delegate,
        table: MemberTable,
        rng: random.Random,
    ) -> None:
        self.config = config
        self._rng = rng  # places newcomers in the probe order; seeded in simulations
        self.local = local
        self.delegate = delegate
        self.table = table
        self.queue = BroadcastQueue(config.retransmit_mult, config.broadcast_queue_max)
        self.suspicions: dict[str, Suspicion] = {}
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.leaving = False
        self.stats = SwimStats()
        self._frame_budget = config.udp_frame_bytes - FRAME_OVERHEAD - COMPOUND_HEADER
        # Sequence numbers are a random per-process epoch (high 31 bits) plus a counter (low
        # 32), so an ack captured in an earlier life of this process never matches a probe of
        # this one: restarting at 1 let replayed acks keep a crashed node alive (red team).
        self._seq_epoch = boot_epoch() << SEQ_COUNTER_BITS
        self._seq = 0
        # True while merging a push-pull reply: the peers' own view of us, which may rightly
        # stand far above our incarnation (we restarted without DATA_DIR/incarnation).
        self._merging_reply = False
        self._ack_refusal_logged_at = -REFUSAL_LOG_INTERVAL
        self.queue.queue(local.node_id, self.local_alive())

    @property
    def node_id(self) -> str:
        return self.local.node_id

    def next_seq(self) -> int:
        """A fresh sequence number for a ping (probe, relay, final probe or reconnect)."""
        self._seq = (self._seq + 1) & SEQ_COUNTER_MASK
        return self._seq_epoch | self._seq

    def local_alive(self) -> Alive:
        """Our Alive at our incarnation (unsigned: the driver signs it on the way out)."""
        return self.local.alive()

    # --- outgoing frames ----------------------------------------------------------------------

    def packet(self, addr: Addr, primary: Sequence[Message]) -> SendUdp:
        """One UDP frame to `addr`: the primary messages plus as much queued news as fits."""
        budget = self._frame_budget - sum(part_size(m) for m in primary)
        extra = self.queue.get(budget, self.table.active())
        return SendUdp(addr, bundle([*primary, *extra]))

    def gossip_batch(self) -> list[Message]:
        """A frame's worth of queued news, or [] when there is none."""
        return self.queue.get(self._frame_budget, self.table.active())

    # --- news handlers ------------------------------------------------------------------------

    def _implausible(self, node: str, incarnation: int) -> bool:
        """True (counted, logged) if news moves a known member's incarnation absurdly far up.

        The claim is dropped: honest incarnations grow one step at a time (fields.py
        MAX_INCARNATION_JUMP). The one exception is a push-pull reply's record of ourselves.
        """
        m = self.table.get(node)
        if m is None or incarnation - m.incarnation <= MAX_INCARNATION_JUMP:
            return False
        if node == self.node_id and self._merging_reply:
            return False
        self.stats.incarnation_jumps_refused += 1
        log.warning("event=incarnation_jump_refused node=%s known=%d claimed=%d",
                    node, m.incarnation, incarnation)
        return True

    def on_alive(self, a: Alive, now: float, out: list[Effect]) -> None:
        is_local = a.node == self.node_id
        if is_local and self.leaving:
            return  # a queued alive must not undo our leave (memberlist aliveNode)
        if self._implausible(a.node, a.incarnation):
            return
        m = self.table.get(a.node)
        if m is None:
            if len(self.table) >= self.config.max_members:
                self._refuse_member(a.node)
                return
            m = Member(a.node, a.addr, a.incarnation, Status.ALIVE, dict(a.meta), now,
                       a.key, a.sig)
            self.table.add(m, self._rng)
            self.queue.queue(a.node, a)
            self._changed(m, None, out)
            return
        reclaim = False
        if m.addr != a.addr:
            reclaim = m.status == Status.LEFT or (
                m.status == Status.DEAD
                and now - m.state_change >= self.config.dead_node_reclaim_time
            )
            if not reclaim:
                self.stats.address_conflicts += 1
                log.warning("event=address_conflict node=%s known=%s:%d claimed=%s:%d status=%s",
                            a.node, *m.addr, *a.addr, m.status.label)
                return
        if is_local:
            if a.incarnation < m.incarnation:
                return
            if a.incarnation == m.incarnation and dict(a.meta) == dict(m.meta):
                return
            # Someone holds a newer or different alive for us (e.g. from before a restart).
            self.refute(a.incarnation)
            return
        if a.incarnation <= m.incarnation and not reclaim:
            return
        self.suspicions.pop(a.node, None)
        self.queue.queue(a.node, a)
        changed = dict(a.meta) != dict(m.meta) or a.addr != m.addr
        m.incarnation, m.meta, m.addr = a.incarnation, dict(a.meta), a.addr
        m.key, m.proof = a.key, a.sig
        old = self.table.set_status(m, Status.ALIVE, now)
        if old != Status.ALIVE or changed:
            self._changed(m, old, out)

    def _refuse_member(self, node: str) -> None:
        """A new member beyond max_members: dropped and counted (logged at the first of a run).

        Without the bound, 10,050 forged alives by one key holder made a table no push-pull
        could carry, so new nodes could not join (red-team finding 6).
        """
        self.stats.members_refused += 1
        if self.stats.members_refused % 1000 == 1:
            log.warning("event=member_refused node=%r reason=member_table_full max_members=%d "
                        "refused=%d", node, self.config.max_members, self.stats.members_refused)

    def _accused(self, node: str, incarnation: int) -> Member | None:
        """The member a Suspect or Dead about (node, incarnation) applies to; None if unknown or stale.

        A stale accusation of ourselves means our refutation did not reach its sender: re-assert.
        """
        m = self.table.get(node)
        if m is None or self._implausible(node, incarnation):
            return None
        if incarnation < m.incarnation:
            if node == self.node_id and not self.leaving:
                self.reassert()
            return None
        return m

    def on_suspect(self, s: Suspect, now: float, out: list[Effect]) -> None:
        m = self._accused(s.node, s.incarnation)
        if m is None:
            return
        timer = self.suspicions.get(s.node)
        if timer is not None:
            if s.incarnation == m.incarnation:
                # Re-gossip new confirmations so others' timers decay too (Lifeguard §4.2).
                if timer.confirm(s.source, now):
                    self.stats.confirmations += 1
                    self.queue.queue(s.node, s)
                return
            # A suspicion at a higher incarnation proves the node refuted the one we hold (we
            # missed its alive): start over rather than count it as a confirmation. memberlist
            # confirms here, which turns one lost refutation into a false "dead".
            del self.suspicions[s.node]
            self._suspect(m, s, now)
            return
        if m.status != Status.ALIVE:
            return
        if s.node == self.node_id:
            self.refute(s.incarnation)
            return
        old = self.table.set_status(m, Status.SUSPECT, now)
        self._suspect(m, s, now)
        self._changed(m, old, out)

    def _suspect(self, m: Member, s: Suspect, now: float) -> None:
        """Record and re-gossip a suspicion of m and start its Lifeguard timer."""
        self.queue.queue(s.node, s)
        m.incarnation = s.incarnation
        self.stats.suspicions += 1
        n = self.table.active()
        k = suspicion_confirmations_wanted(self.config.suspicion_mult, n)
        low = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval)
        high = self.config.suspicion_max_timeout_mult * low
        self.suspicions[s.node] = Suspicion(s.source, k, low, high, now)

    def on_dead(self, d: Dead, now: float, out: list[Effect]) -> None:
        m = self._accused(d.node, d.incarnation)
        if m is None:
            return
        self.suspicions.pop(d.node, None)
        if m.gone:
            return
        if d.node == self.node_id:
            if not self.leaving:
                self.refute(d.incarnation)
            return
        self.queue.queue(d.node, d)
        m.incarnation = d.incarnation
        old = self.table.set_status(m, Status.DEAD, now)
        self._changed(m, old, out)

    def on_leave(self, msg: Leave, now: float, out: list[Effect]) -> None:
        m = self.table.get(msg.node)
        if m is None or msg.incarnation < m.incarnation or m.status == Status.LEFT:
            return
        if self._implausible(msg.node, msg.incarnation):
            return
        if msg.node == self.node_id:
            if not self.leaving:
                self.refute(msg.incarnation)  # a stale leave from a previous life of ours
            return
        # A leave upgrades DEAD to LEFT: the node's own word beats our failure detector.
        self.suspicions.pop(msg.node, None)
        self.queue.queue(msg.node, msg)
        m.incarnation, m.proof = msg.incarnation, msg.sig
        old = self.table.set_status(m, Status.LEFT, now)
        self._changed(m, old, out)

    def merge(self, records: Iterable[MemberRecord], now: float, out: list[Effect],
              reply: bool = False) -> None:
        """Merge a push-pull table (memberlist mergeState): remote dead counts only as suspect.

        `reply`: the table answers our own push-pull, so its record of us is what our peers
        hold, and we refute it however far above ours it stands.
        """
        self._merging_reply = reply
        try:
            self._merge(records, now, out)
        finally:
            self._merging_reply = False

    def _merge(self, records: Iterable[MemberRecord], now: float, out: list[Effect]) -> None:
        for r in records:
            if r.status == Status.ALIVE:
                self.on_alive(Alive(r.node, r.addr, r.incarnation, r.meta, r.key, r.sig), now,
                              out)
            elif r.status == Status.LEFT:
                self.on_leave(Leave(r.node, r.incarnation, r.sig), now, out)
            elif r.node in self.suspicions:
                # A suspicion we already time is not independent evidence: memberlist counts it
                # as our own confirmation, which shortens the timer for nothing.
                m = self.table.get(r.node)
                if m is not None and r.incarnation > m.incarnation:
                    self.on_suspect(Suspect(r.node, r.incarnation, self.node_id), now, out)
            else:
                self.on_suspect(Suspect(r.node, r.incarnation, self.node_id), now, out)

    def due_suspicions(self, now: float) -> list[tuple[str, Suspicion]]:
        """Suspicion timers that ran out (or whose final probe did), still about a suspect."""
        due: list[tuple[str, Suspicion]] = []
        for node_id, timer in list(self.suspicions.items()):
            if not timer.expired(now):
                continue
            m = self.table.get(node_id)
            if m is None or m.status != Status.SUSPECT:
                del self.suspicions[node_id]
            else:
                due.append((node_id, timer))
        return due

    def declare_dead(self, node_id: str, now: float, out: list[Effect]) -> None:
        """The suspicion of node_id ran out unrefuted: it is dead (SWIM §4.2)."""
        timer = self.suspicions.pop(node_id, None)
        m = self.table.get(node_id)
        if m is None or m.status != Status.SUSPECT:
            return
        self.stats.declared_dead += 1
        if timer is not None:
            log.info("event=suspect_timeout node=%s confirmations=%d after_s=%.2f",
                     node_id, timer.confirmations, now - timer.start)
        self.on_dead(Dead(node_id, m.incarnation, self.node_id), now, out)

    def verified(self, seq: int, node: str, sender: str | None, now: float) -> bool:
        """An ack from `node` ("": unnamed), sent by `sender`, answered the final probe `seq`:
        the suspect lives, so give it another period."""
        for suspect, timer in self.suspicions.items():
            if timer.verify_seq == seq and node in ("", suspect):
                if not vouched(sender, suspect, timer.verify_helpers):
                    self.refuse_ack(seq, sender, suspect, now)
                    return False
                timer.verify_seq = None
                timer.verify_helpers = frozenset()
                timer.deadline = now + timer.min_timeout
                return True
        return False

    def refuse_ack(self, seq: int, sender: str | None, target: str, now: float) -> None:
        """An ack for our probe of `target` sent by a node that is neither the target nor a
        member we asked to probe it: counted and dropped (logged at most once a second)."""
        self.stats.acks_refused += 1
        if now - self._ack_refusal_logged_at >= REFUSAL_LOG_INTERVAL:
            self._ack_refusal_logged_at = now
            log.warning("event=ack_refused seq=%d target=%s sender=%s refused=%d "
                        "reason=sender_is_not_the_target_or_a_helper",
                        seq, target, sender, self.stats.acks_refused)

    def next_suspicion_deadline(self) -> float | None:
        if not self.suspicions:
            return None
        return min(t.deadline for t in self.suspicions.values())

    # --- our own state ------------------------------------------------------------------------

    def refute(self, accused: int) -> None:
        """Announce we are alive with an incarnation above `accused` (SWIM §4.2).

        Never above the wire maximum: peers drop frames that carry more, so a refutation
        beyond it would cut us out.
        """
        inc = bump(max(self.local.incarnation, accused))
        self.local.incarnation = inc
        # Being suspected is a hint that we are the slow one (Lifeguard §4.1).
        self.awareness.apply_delta(1)
        self.stats.refutations += 1
        self.queue.queue(self.node_id, self.local_alive())
        log.info("event=refute node=%s incarnation=%d", self.node_id, inc)

    def reassert(self) -> None:
        """Someone still holds an accusation we already refuted: re-send our current alive.

        Its refutation was lost on the way to them. Queuing it (no new incarnation) lets it ride
        on the ack to the ping that carried the stale accusation.
        """
        if self.queue.transmits(self.node_id) is None:
            self.queue.queue(self.node_id, self.local_alive())

    def update_meta(self, meta: Mapping[str, str]) -> None:
        self.local.meta = dict(meta)
        self.local.incarnation = bump(self.local.incarnation)
        self.queue.queue(self.node_id, self.local_alive())

    def _changed(self, m: Member, old: Status | None, out: list[Effect]) -> None:
        info = m.info()
        out.append(MemberChanged(info, old, m.status))
        log.info("event=member_%s node=%s addr=%s:%d incarnation=%d was=%s", m.status.label,
                 m.node_id, *m.addr, m.incarnation, old.label if old is not None else "unknown")
        if m.status == Status.ALIVE:
            if old is None or old >= Status.DEAD:
                self.delegate.notify_join(info)
            elif old == Status.ALIVE:
                self.delegate.notify_update(info)
        elif m.status >= Status.DEAD and (old is None or old < Status.DEAD):
            self.delegate.notify_leave(info)


def bump(incarnation: int) -> int:
    """The next incarnation, saturating at the wire maximum (peers drop frames above it)."""
    return min(incarnation + 1, MAX_COUNTER)
