"""Swim: the sans-I/O SWIM + Lifeguard membership core.

Addresses are `(host, port)` tuples (meshkp.net.addr.Addr): the node's gossip UDP/TCP
listener. Times are seconds from an injected monotonic clock. The driver:

- calls `tick(now)` whenever `now >= next_deadline()` (and may call it more often);
- calls `handle(now, from_addr, message, sender)` for every decoded UDP frame and every
  push-pull read from TCP (a request on an accepted connection, or the reply to our SendTcp),
  with the node id the frame's signature proves (None from a transport that signs no frames);
- performs the returned effects (meshkp.swim.effects: SendUdp, SendTcp, ReplyTcp, MemberChanged).

Nothing here sleeps, opens sockets or registers callbacks. One driver runs it
(meshkp/membership/service.py), over real sockets or over a SimNetwork (meshkp/sim) on a
FakeClock.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Mapping

from meshkp.errors import ConfigError, WireError
from meshkp.net.addr import Addr
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import (
    Delegate,
    Effect,
    MemberChanged,
    NullDelegate,
    ReplyTcp,
    SendTcp,
    SendUdp,
)
from meshkp.swim.fields import check_meta, packb
from meshkp.swim.formulas import push_pull_scale
from meshkp.swim.membership import Membership, SwimStats, bump
from meshkp.swim.messages import (
    Ack,
    Alive,
    Dead,
    Leave,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    bundle,
    unbundle,
)
from meshkp.swim.probe import FailureDetector
from meshkp.swim.pushpull import bounded_push_pull
from meshkp.swim.state import Member, MemberTable
from meshkp.swim.types import MemberInfo, Status

log = logging.getLogger("meshkp.swim")


def _next_phase(at: float, interval: float, now: float) -> float:
    """The first time `at + k * interval` (k >= 0) that is later than `now`."""
    if at > now:
        return at
    return at + (math.floor((now - at) / interval) + 1) * interval


class Swim:
    """One node's membership protocol state machine."""

    def __init__(
        self,
        config: SwimConfig,
        node_id: str,
        addr: Addr,
        now: float,
        *,
        delegate: Delegate | None = None,
        incarnation: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.delegate: Delegate = delegate or NullDelegate()
        self.rng = rng or random.Random()
        meta = self._checked_meta(self.delegate.node_meta())
        local = Member(node_id, addr, incarnation, Status.ALIVE, meta, now)
        table = MemberTable(local, config.dead_node_forget_time)
        self.ms = Membership(config, local, self.delegate, table, self.rng)
        self.fd = FailureDetector(config, self.ms, self.rng, now)
        self._now = now
        self._next_gossip_at = now + self.rng.uniform(0, config.gossip_interval)
        self._next_push_pull_at = now + self.rng.uniform(0, config.push_pull_interval or 1.0)
        self._next_reconnect_at = now + self.rng.uniform(0, config.reconnect_interval or 1.0)

    # --- views --------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.ms.node_id

    @property
    def addr(self) -> Addr:
        return self.ms.local.addr

    @property
    def incarnation(self) -> int:
        return self.ms.local.incarnation

    @property
    def stats(self) -> SwimStats:
        return self.ms.stats

    @property
    def health_score(self) -> int:
        """Lifeguard awareness score: 0 is healthy, awareness_max_multiplier - 1 is worst."""
        return self.ms.awareness.score

    @property
    def leaving(self) -> bool:
        return self.ms.leaving

    @property
    def leave_broadcast_done(self) -> bool:
        """After leave(): our Leave has been sent its full retransmit count."""
        return self.ms.leaving and self.node_id not in self.ms.queue

    def members(self) -> list[MemberInfo]:
        """Every known member, ourselves included."""
        return [m.info() for m in self.ms.table]

    def member(self, node_id: str) -> MemberInfo | None:
        m = self.ms.table.get(node_id)
        return None if m is None else m.info()

    def count(self, status: Status) -> int:
        return self.ms.table.count(status)

    # --- driving ------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """The earliest time at which tick() has work to do."""
        cfg = self.config
        due = self.fd.next_deadline()
        suspicion = self.ms.next_suspicion_deadline()
        if suspicion is not None and suspicion < due:
            due = suspicion
        if len(self.ms.queue):
            self._next_gossip_at = _next_phase(self._next_gossip_at, cfg.gossip_interval,
                                               self._now)
            due = min(due, self._next_gossip_at)
        if cfg.push_pull_interval > 0 and not self.ms.leaving:
            due = min(due, self._next_push_pull_at)
        if cfg.reconnect_interval > 0 and self.ms.table.count(Status.DEAD):
            due = min(due, self._next_reconnect_at)
        return due

    def tick(self, now: float) -> list[Effect]:
        """Run every timer due at `now`: probes, ping-req relays, suspicions, gossip, push-pull."""
        self._now = now
        out: list[Effect] = []
        self.fd.tick(now, out)
        self.fd.final_probe(now, out)
        cfg = self.config
        if now >= self._next_gossip_at:
            self._next_gossip_at = _next_phase(self._next_gossip_at, cfg.gossip_interval, now)
            self._gossip(now, out)
        if cfg.push_pull_interval > 0 and now >= self._next_push_pull_at:
            n = self.ms.table.active()
            self._next_push_pull_at = now + push_pull_scale(cfg.push_pull_interval, n)
            self._push_pull(out)
        if cfg.reconnect_interval > 0 and now >= self._next_reconnect_at:
            self._next_reconnect_at = now + cfg.reconnect_interval
            self._reconnect(now, out)
        self._greet_returned(out)
        return out

    def handle(self, now: float, from_addr: Addr, message: Message,
               sender: str | None = None) -> list[Effect]:
        """Process one received message (a Compound is processed part by part, in order).

        `sender`: the node that signed the frame; acks count only from the member probed or a
        member asked to probe it (the driver has already dropped messages that name another
        node as their source, meshkp/membership/proofs.py).
        """
        self._now = now
        out: list[Effect] = []
        for msg in unbundle(message):
            self._dispatch(now, msg, sender, out)
        self._greet_returned(out)
        return out

    def _dispatch(self, now: float, msg: Message, sender: str | None, out: list[Effect]) -> None:
        ms = self.ms
        if isinstance(msg, Ping):
            self.fd.on_ping(msg, out)
        elif isinstance(msg, Ack):
            self.fd.on_ack(msg, sender, now, out)
        elif isinstance(msg, PingReq):
            self.fd.on_ping_req(msg, now, out)
        elif isinstance(msg, Nack):
            self.fd.on_nack(msg, sender)
        elif isinstance(msg, Alive):
            ms.on_alive(msg, now, out)
        elif isinstance(msg, Suspect):
            ms.on_suspect(msg, now, out)
        elif isinstance(msg, Dead):
            ms.on_dead(msg, now, out)
        elif isinstance(msg, Leave):
            ms.on_leave(msg, now, out)
        elif isinstance(msg, PushPull):
            # Merge before replying, so the reply already carries our refutations.
            ms.merge(msg.members, now, out, reply=msg.reply)
            self.delegate.merge_remote_state(msg.user_state, msg.join)
            if not msg.reply:
                out.append(ReplyTcp(self.local_push_pull(join=msg.join, reply=True)))

    # --- operator actions ---------------------------------------------------------------------

    def join(self, now: float, seeds: Iterable[Addr]) -> list[Effect]:
        """Push-pull with each seed (the driver retries with backoff if none answers)."""
        self._now = now
        own = self.addr
        return [SendTcp(s, self.local_push_pull(join=True, reply=False))
                for s in dict.fromkeys(seeds) if s != own]

    def leave(self, now: float) -> list[Effect]:
        """Graceful leave: broadcast LEFT at a higher incarnation and stop probing."""
        self._now = now
        ms = self.ms
        if ms.leaving:
            return []
        ms.leaving = True
        local = ms.local
        local.incarnation = bump(local.incarnation)
        old = ms.table.set_status(local, Status.LEFT, now)
        ms.queue.queue(local.node_id, Leave(local.node_id, local.incarnation))
        log.info("event=leave node=%s incarnation=%d", local.node_id, local.incarnation)
        out: list[Effect] = [MemberChanged(local.info(), old, Status.LEFT)]
        self._gossip(now, out)  # start spreading it now rather than at the next gossip tick
        return out

    def update_meta(self, now: float, meta: Mapping[str, str]) -> None:
        """Change our meta (e.g. the HTTP address) and gossip it at a new incarnation."""
        self._now = now
        self.ms.update_meta(self._checked_meta(meta))

    def _checked_meta(self, meta: Mapping[str, str]) -> dict[str, str]:
        try:
            checked = check_meta(dict(meta), "node meta")
        except WireError as exc:
            raise ConfigError(f"{exc}; peers would drop our alive messages") from exc
        if len(packb(checked)) > self.config.max_meta_bytes:
            raise ConfigError(f"node meta is larger than swim.max_meta_bytes "
                              f"({self.config.max_meta_bytes}): keep it to a few addresses")
        return checked

    def local_push_pull(self, join: bool, reply: bool) -> PushPull:
        """Our table and delegate state, cut to fit one TCP frame (counted and logged if cut)."""
        records = [m.record() for m in self.ms.table]
        message, trim = bounded_push_pull(self.node_id, join, reply, records,
                                          self.delegate.local_state(join))
        if trim:
            stats = self.ms.stats
            stats.push_pulls_truncated += 1
            log.warning("event=push_pull_truncated members=%d members_cut=%d state_dropped=%s",
                        len(records), trim.members_cut, trim.state_dropped)
        return message

    # --- dissemination ------------------------------------------------------------------------

    def _gossip(self, now: float, out: list[Effect]) -> None:
        """Send queued news to a few random members, the recently dead included (so they refute)."""
        if not len(self.ms.queue):
            return
        dead_window = self.config.gossip_to_the_dead_time

        def reachable(m: Member) -> bool:
            if m.status <= Status.SUSPECT:
                return True
            return m.status == Status.DEAD and now - m.state_change <= dead_window

        for peer in self.ms.table.random_members(self.config.gossip_nodes, self.rng, reachable):
            batch = self.ms.gossip_batch()
            if not batch:
                break
            out.append(SendUdp(peer.addr, bundle(batch)))

    def _push_pull(self, out: list[Effect]) -> None:
        if self.ms.leaving:
            return
        peers = self.ms.table.random_members(1, self.rng, lambda m: m.status == Status.ALIVE)
        if peers:
            out.append(SendTcp(peers[0].addr, self.local_push_pull(join=False, reply=False)))

    def _greet_returned(self, out: list[Effect]) -> None:
        """Push-pull at once with each member that came back from dead (a healed partition).

        Its refutation reached us, but it still holds the rest of our side as dead, and we may
        hold others of its side as dead: one full-state exchange each way makes both ends send
        what the other must refute, instead of waiting for reconnect pings to find each dead
        member one reconnect_interval at a time (a healed 2|3 split took up to 36 s in the LAN
        profile's simulation, tests/sim/test_swim_heal.py). Bounded: one push-pull per member
        that returned, which is at most one per dead member we held.
        """
        if self.ms.leaving:
            return
        returned = [e.member.addr for e in out if isinstance(e, MemberChanged)
                    and e.new == Status.ALIVE and e.old in (Status.DEAD, Status.LEFT)
                    and e.member.node_id != self.node_id]
        for addr in returned:
            out.append(SendTcp(addr, self.local_push_pull(join=False, reply=False)))

    def _reconnect(self, now: float, out: list[Effect]) -> None:
        """Ping one random dead member with its death notice attached (Serf reconnect).

        A live node that reads its own death refutes, and its alive rides back on the ack; this is
        how a healed partition or a resumed process finds its way back.
        """
        if self.ms.leaving or not self.ms.table.count(Status.DEAD):
            return
        m = self.rng.choice([m for m in self.ms.table if m.status == Status.DEAD])
        local = self.ms.local
        notice = Dead(m.node_id, m.incarnation, local.node_id)
        ping = Ping(self.ms.next_seq(), m.node_id, local.node_id, local.addr)
        out.append(self.ms.packet(m.addr, [notice, ping]))
