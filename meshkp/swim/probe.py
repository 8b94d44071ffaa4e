"""The SWIM failure detector with Lifeguard nacks (SWIM §3-4, Lifeguard §4.1, memberlist probeNode).

One probe per (awareness-scaled) probe interval: ping the next member in round-robin order; if
no ack within probe_timeout, ask `indirect_checks` alive members to ping-req it (they nack when
they cannot reach it either); if still no ack when the interval ends, suspect it. Missing nacks
mean *we* are the problem, so they raise our own health score instead of blaming the target.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from meshkp.net.addr import Addr
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import Effect
from meshkp.swim.membership import Membership, vouched
from meshkp.swim.messages import Ack, Message, Nack, Ping, PingReq, Suspect
from meshkp.swim.state import Member
from meshkp.swim.types import Status


@dataclass(slots=True)
class _Probe:
    target: str
    incarnation: int  # at probe start: a refutation meanwhile makes our suspicion stale
    seq: int
    indirect_at: float
    deadline: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    helpers: frozenset[str] = frozenset()  # members asked to ping-req the target: they may ack
    nacked: set[str] = field(default_factory=set)  # helpers whose nack was counted


@dataclass(slots=True)
class _Relay:
    """A ping we send on behalf of a PingReq: forward the ack, or nack at the deadline."""

    requester: Addr
    seq: int
    target: str
    nack: bool
    deadline: float


class FailureDetector:
    """Probe scheduling plus the ack/nack/ping-req bookkeeping."""

    def __init__(self, config: SwimConfig, ms: Membership, rng: random.Random, now: float) -> None:
        self.config = config
        self.ms = ms
        self.rng = rng
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        # Random phase, so that nodes started together do not probe in lockstep (memberlist
        # triggerFunc stagger).
        self.next_probe_at = now + rng.uniform(0, config.probe_interval)

    def next_deadline(self) -> float:
        due = float("inf") if self.ms.leaving else self.next_probe_at
        p = self._probe
        if p is not None:
            due = min(due, p.deadline if p.indirect_sent else p.indirect_at)
        for relay in self._relays.values():
            due = min(due, relay.deadline)
        return due

    def tick(self, now: float, out: list[Effect]) -> None:
        p = self._probe
        if p is not None:
            if not p.indirect_sent and now >= p.indirect_at:
                self._send_indirect(p, out)
            if now >= p.deadline:
                self._probe = None
                self._failed(p, now, out)
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                if relay.nack:
                    out.append(self._answer(relay, Nack(relay.seq)))
        if now >= self.next_probe_at and not self.ms.leaving:
            self._start(now, out)

    # --- incoming -----------------------------------------------------------------------------

    def on_ping(self, ping: Ping, out: list[Effect]) -> None:
        if ping.target and ping.target != self.ms.node_id:
            # Meant for a previous owner of our address: answering would keep it falsely alive.
            self.ms.stats.misdirected_pings += 1
            return
        out.append(self.ms.packet(ping.source_addr, [Ack(ping.seq, self.ms.node_id)]))

    def on_ping_req(self, req: PingReq, now: float, out: list[Effect]) -> None:
        if len(self._relays) >= self.config.max_pending_relays:
            self.ms.stats.relays_refused += 1
            return
        seq = self.ms.next_seq()
        self._relays[seq] = _Relay(req.source_addr, req.seq, req.target, req.nack,
                                   now + self.config.probe_timeout)
        local = self.ms.local
        ping = Ping(seq, req.target, local.node_id, local.addr)
        out.append(self.ms.packet(req.target_addr, [ping]))

    def on_ack(self, ack: Ack, sender: str | None, now: float, out: list[Effect]) -> None:
        """Match the ack by (sequence, member that answered, node that sent it); a mismatch is
        counted, not used.

        `sender` is the frame's proven sender (None from a transport that signs no frames). An
        ack counts only when it comes from the member probed itself, or from a member we asked
        to ping-req it (which relays the target's answer): otherwise any holder of the cluster
        key who learnt a probe's sequence number could ack for a dead member and keep it alive.
        """
        p = self._probe
        if p is not None and p.seq == ack.seq:
            if not _answers(ack, p.target):
                self.ms.stats.acks_mismatched += 1
                return
            if not vouched(sender, p.target, p.helpers):
                self.ms.refuse_ack(ack.seq, sender, p.target, now)
                return
            self._probe = None
            self.ms.awareness.apply_delta(-1)  # a probe that completes is a sign of good health
            return
        relay = self._relays.get(ack.seq)
        if relay is not None:
            if not _answers(ack, relay.target):
                self.ms.stats.acks_mismatched += 1
                return
            if not vouched(sender, relay.target, frozenset()):
                self.ms.refuse_ack(ack.seq, sender, relay.target, now)
                return
            del self._relays[ack.seq]
            out.append(self._answer(relay, Ack(relay.seq, relay.target)))
            return
        self.ms.verified(ack.seq, ack.node, sender, now)

    def on_nack(self, nack: Nack, sender: str | None) -> None:
        """A helper's nack is evidence of our own health: it counts once per helper asked (any
        other node's nacks could otherwise hide that our probes go unanswered)."""
        p = self._probe
        if p is None or p.seq != nack.seq:
            return
        if sender is not None:
            if sender not in p.helpers or sender in p.nacked:
                self.ms.stats.nacks_refused += 1
                return
            p.nacked.add(sender)
        p.nacks += 1

    # --- probe lifecycle ----------------------------------------------------------------------

    def _start(self, now: float, out: list[Effect]) -> None:
        interval = self.ms.awareness.scale(self.config.probe_interval)
        self.next_probe_at = now + interval
        target = self.ms.table.next_probe_target(now, self.rng)
        if target is None:
            return
        self.ms.stats.probes += 1
        local = self.ms.local
        seq = self.ms.next_seq()
        primary: list[Message] = []
        if target.status == Status.SUSPECT:
            # Tell a suspect it is suspected, first in the frame, so that its refutation can
            # ride back on the ack (memberlist probeNode; Lifeguard's "buddy system").
            primary.append(Suspect(target.node_id, target.incarnation, local.node_id))
        primary.append(Ping(seq, target.node_id, local.node_id, local.addr))
        out.append(self.ms.packet(target.addr, primary))
        self._probe = _Probe(target.node_id, target.incarnation, seq,
                             now + self.config.probe_timeout, now + interval)

    def _send_indirect(self, p: _Probe, out: list[Effect]) -> None:
        p.indirect_sent = True
        target = self.ms.table.get(p.target)
        if target is None:
            return
        self.ms.stats.indirect_probes += 1
        p.helpers = self._ping_req(target, p.seq, out, self.config.indirect_checks)
        p.expected_nacks = len(p.helpers)

    def _answer(self, relay: _Relay, answer: Ack | Nack) -> Effect:
        """Our ack or nack for a ping-req, with our own view of the target when we hold it alive.

        meshkp addition: a requester that missed the target's refutation learns the newer
        incarnation from any helper that answers, even when the target itself stays out of reach.
        An alive at an incarnation the requester already has changes nothing, so this cannot keep
        a really dead node alive.
        """
        primary: list[Message] = [answer]
        target = self.ms.table.get(relay.target)
        if target is not None and target.status == Status.ALIVE:
            primary.append(target.alive())
        return self.ms.packet(relay.requester, primary)

    def _ping_req(self, target: Member, seq: int, out: list[Effect],
                  helpers: int) -> frozenset[str]:
        """Ask up to `helpers` alive members to probe target; return the ids of those asked."""
        peers = self.ms.table.random_members(
            helpers, self.rng,
            lambda m: m.status == Status.ALIVE and m.node_id != target.node_id,
        )
        local = self.ms.local
        req = PingReq(seq, target.node_id, target.addr, local.node_id, local.addr, nack=True)
        for peer in peers:
            out.append(self.ms.packet(peer.addr, [req]))
        return frozenset(peer.node_id for peer in peers)

    def final_probe(self, now: float, out: list[Effect]) -> None:
        """Run out suspicion timers, probing each suspect one last time before calling it dead.

        memberlist declares dead as soon as the timer runs out. An observer that missed the
        refutation then turns one lost packet into a false positive, so (when final_probe is on)
        we ping the suspect once more, directly with the accusation attached (so its alive rides
        back on the ack) and through 2 * indirect_checks members (whose answers carry their own
        view of it), and wait one probe interval.
        """
        for node_id, timer in self.ms.due_suspicions(now):
            target = self.ms.table.get(node_id)
            if not self.config.final_probe or timer.verify_seq is not None or target is None:
                self.ms.declare_dead(node_id, now, out)
                continue
            seq = self.ms.next_seq()
            timer.verify_seq = seq
            timer.deadline = now + self.config.probe_interval
            local = self.ms.local
            accusation = Suspect(node_id, target.incarnation, local.node_id)
            ping = Ping(seq, node_id, local.node_id, local.addr)
            out.append(self.ms.packet(target.addr, [accusation, ping]))
            # Twice the usual helpers: this probe decides, so buy it a lower miss rate.
            timer.verify_helpers = self._ping_req(target, seq, out,
                                                  2 * max(1, self.config.indirect_checks))

    def _failed(self, p: _Probe, now: float, out: list[Effect]) -> None:
        self.ms.stats.probe_failures += 1
        # Lifeguard: every expected nack that did not come is evidence against *our* health;
        # with nobody to ask, a failed probe counts once (memberlist probeNode).
        if p.expected_nacks > 0:
            self.ms.awareness.apply_delta(max(0, p.expected_nacks - p.nacks))
        else:
            self.ms.awareness.apply_delta(1)
        target = self.ms.table.get(p.target)
        if target is not None and not target.gone:
            self.ms.on_suspect(Suspect(p.target, p.incarnation, self.ms.node_id), now, out)


def _answers(ack: Ack, member: str) -> bool:
    """The ack comes from `member` (or from a peer that does not name who answered)."""
    return not ack.node or ack.node == member
