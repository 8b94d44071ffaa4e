"""MembershipService: the one driver of the sans-I/O Swim core, over a GossipTransport.

It arms one timer at `Swim.next_deadline()` on the injected Scheduler, feeds every message the
transport delivers to `Swim.handle()`, and performs the effects. Join (with retries), push-pull,
leave and mDNS discovery run as asyncio tasks that wait on the same Scheduler. With
SystemClock and SocketTransport this is a real node; with a FakeClock and a SimTransport it is
one process of a simulation (meshkp/sim), so the simulation runs this very loop.

All tasks are tracked and cancelled by `stop()`; nothing is fire-and-forget (STYLE.md §9).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from meshkp.clock import Scheduler, SystemClock, TimerHandle, sleep
from meshkp.discovery.backoff import SeedSource, join_with_retry
from meshkp.discovery.dns import parse_join_spec
from meshkp.discovery.mdns import MdnsDiscovery, MdnsPeer
from meshkp.errors import ConfigError, PeerUnreachable, WireError
from meshkp.membership.config import MembershipConfig
from meshkp.membership.incarnation import next_incarnation, save_incarnation
from meshkp.membership.proofs import Proofs
from meshkp.membership.sockets import SocketTransport
from meshkp.membership.transport import GossipTransport
from meshkp.net.addr import Addr, format_addr
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.swim.effects import (
    Delegate,
    Effect,
    MemberChanged,
    NullDelegate,
    ReplyTcp,
    SendTcp,
    SendUdp,
)
from meshkp.swim.messages import Message, PushPull
from meshkp.swim.protocol import Swim
from meshkp.swim.types import MemberInfo, Status

log = logging.getLogger(__name__)

ChangeListener = Callable[[MemberInfo, Status | None, Status], None]

# If the core's next deadline does not move past `now` after a tick, wait at least this long
# (seconds) before the next one instead of spinning.
MIN_TICK_GAP = 0.001
# Joins started by mDNS announcements at once. mDNS is unauthenticated: unbounded, a host on
# the LAN could make us queue one push-pull (a sealed copy of our member table) per announcement.
MAX_MDNS_JOINS = 8
# After a tick raised (a bug in the core), wait this long before the next one: the timer goes
# on (probing must not stop for good, as it did before), without a tight loop of tracebacks.
TIMER_FAILURE_BACKOFF = 1.0
# How often leave() looks whether its broadcast went out, at most (seconds).
LEAVE_POLL = 0.05


class MembershipService:
    """One node's membership: Swim core + transport + discovery; start()/stop() idempotent."""

    def __init__(
        self,
        config: MembershipConfig,
        identity: NodeIdentity,
        keyring: Keyring,
        *,
        meta: Mapping[str, str] | None = None,
        delegate: Delegate | None = None,
        data_dir: Path | None = None,
        clock: Scheduler | None = None,
        transport: GossipTransport | None = None,
        stats: NetStats | None = None,
        rng: random.Random | None = None,
        auth: FrameAuth | None = None,
    ) -> None:
        self.config = config.validate()
        self.identity = identity
        self.keyring = keyring
        self.stats = stats or NetStats()
        # The node's frame signer and key directory (shared with its other transports when the
        # node passes one); statements are signed and checked against the same directory.
        self.auth = auth or FrameAuth(identity)
        self.proofs = Proofs(identity, self.auth.peers, self.stats)
        if transport is None:
            transport = SocketTransport(
                config.bind_host, config.gossip_port, keyring, self.auth, self.stats,
                advertise_host=config.advertise_host,
                udp_frame_bytes=config.swim.udp_frame_bytes, tcp=config.tcp)
        self._transport: GossipTransport = transport
        self._delegate = delegate or NullDelegate(meta)
        self._data_dir = data_dir
        self._clock: Scheduler = clock or SystemClock()
        self._rng = rng or random.Random()
        self._listeners: list[ChangeListener] = []
        self._swim: Swim | None = None
        self._mdns: MdnsDiscovery | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf
        self._stopping = False
        self._mdns_joins: set[str] = set()  # node ids an mDNS-triggered join is running for
        self.timer_failures = 0  # ticks that raised (each logged as event=swim_timer_failed)

    # ---- views (for HTTP /cluster/* and the replication layer) ----

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def swim(self) -> Swim:
        """The running core (raises before start())."""
        if self._swim is None:
            raise ConfigError("membership is not started")
        return self._swim

    @property
    def running(self) -> bool:
        return self._swim is not None and not self._stopping

    @property
    def gossip_addr(self) -> Addr:
        """The (ip, port) peers use to reach us."""
        return self.swim.addr

    def members(self) -> list[MemberInfo]:
        """Every known member, ourselves included (empty before start())."""
        return self._swim.members() if self._swim is not None else []

    def member(self, node_id: str) -> MemberInfo | None:
        """One member by id (one table lookup, where members() copies every member)."""
        return self._swim.member(node_id) if self._swim is not None else None

    def alive_peers(self) -> list[MemberInfo]:
        """Alive members other than ourselves (whom replication may talk to)."""
        return [m for m in self.members() if m.status == Status.ALIVE and m.node_id != self.node_id]

    def counts(self) -> dict[str, int]:
        """Members by status label."""
        counts = {s.label: 0 for s in Status}
        for m in self.members():
            counts[m.status.label] += 1
        return counts

    def healthy(self) -> bool:
        """True while this node sees a majority of known, not-left members alive."""
        counts = self.counts()
        known = counts["alive"] + counts["suspect"] + counts["dead"]
        return self._swim is not None and counts["alive"] * 2 > known

    def status(self) -> dict[str, object]:
        """The /cluster/status document."""
        swim = self._swim
        return {
            "id": self.node_id,
            "addr": format_addr(swim.addr) if swim else None,
            "incarnation": swim.incarnation if swim else None,
            "counts": self.counts(),
            "healthy": self.healthy(),
            "health_score": swim.health_score if swim else None,
            "leaving": swim.leaving if swim else False,
            "keyring": {"primary": self.keyring.primary_id, "keys": self.keyring.key_ids},
            # This node's Ed25519 public key (peers pin configured ids to it), and how many
            # peers' keys it has learnt.
            "identity": {"key": self.identity.public_key.hex(), "known_keys": len(self.auth.peers)},
            "net": self.stats.snapshot(),
        }

    def swim_counters(self) -> dict[str, int]:
        """The SWIM core's counters by name (empty before start())."""
        return dataclasses.asdict(self._swim.stats) if self._swim is not None else {}

    def update_meta(self, changes: Mapping[str, str]) -> None:
        """Merge `changes` into our gossiped meta (e.g. {"sync": "ip:port"}); spreads at once."""
        swim = self.swim
        local = swim.member(self.node_id)
        meta = {**(local.meta if local is not None else {}), **changes}
        swim.update_meta(self._clock.now(), meta)
        self._arm()

    def add_listener(self, listener: ChangeListener) -> None:
        """Call listener(member, old, new) on every status change (synchronously, keep it quick)."""
        self._listeners.append(listener)

    # ---- lifecycle ----

    async def start(self) -> None:
        """Listen, arm the protocol timer, start discovery and begin joining (idempotent)."""
        if self._swim is not None:
            return
        addr = await self._transport.start(self)
        try:
            await self._start_protocol(addr)
        except BaseException:
            # E.g. mDNS cannot open its sockets: leave nothing bound or running, so that the
            # error is the whole outcome and start() can be retried.
            if self._swim is not None:
                await self.stop()
            else:
                await self._transport.stop()
            raise

    async def _start_protocol(self, addr: Addr) -> None:
        cfg = self.config
        incarnation = next_incarnation(self._data_dir)
        self._swim = Swim(cfg.swim, self.node_id, addr, self._clock.now(),
                          delegate=self._delegate, incarnation=incarnation, rng=self._rng)
        self._stopping = False
        log.info("event=membership_started node_id=%s addr=%s incarnation=%d discovery=%s",
                 self.node_id, format_addr(addr), incarnation, cfg.discovery)
        self._arm()
        sources: list[SeedSource] = [parse_join_spec(s) for s in cfg.join]
        if cfg.discovery == "mdns":
            self._mdns = MdnsDiscovery(
                cfg.cluster_name, self.node_id, addr[1], advertise=[addr[0]],
                http_port=_http_port(self._delegate.node_meta()),
                interfaces=list(cfg.mdns_interfaces) if cfg.mdns_interfaces else None,
                on_peer=self._on_mdns_peer,
            )
            await self._mdns.start()
        if sources:
            self._spawn(self._initial_join(sources), "join")

    async def stop(self) -> None:
        """Cancel timer and tasks, close discovery and transport (idempotent). Sends no leave."""
        if self._swim is None or self._stopping:
            return
        self._stopping = True
        self._disarm()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._mdns is not None:
            await self._mdns.stop()
            self._mdns = None
        await self._transport.stop()
        save_incarnation(self._data_dir, self.swim.incarnation)
        log.info("event=membership_stopped node_id=%s", self.node_id)
        self._swim = None

    async def leave(self, timeout: float | None = None) -> bool:
        """Broadcast LEFT and wait until it was gossiped (or timeout); True if fully sent."""
        swim = self.swim
        self._apply(swim.leave(self._clock.now()))
        limit = timeout if timeout is not None else swim.config.leave_timeout
        deadline = self._clock.now() + limit

        def told_everyone() -> bool:
            # Alone (no alive or suspect peer), there is nobody to tell: do not wait.
            return swim.leave_broadcast_done or not any(
                m.status <= Status.SUSPECT and m.node_id != self.node_id for m in swim.members())

        while not told_everyone() and self._clock.now() < deadline:
            await sleep(self._clock, min(swim.config.gossip_interval, LEAVE_POLL))
        done = told_everyone()
        log.info("event=leave_broadcast node_id=%s complete=%s", self.node_id, done)
        return done

    async def join(self, addrs: Sequence[Addr]) -> int:
        """Push-pull with each address; return how many answered."""
        swim = self.swim
        effects = swim.join(self._clock.now(), addrs)
        pushes = [e for e in effects if isinstance(e, SendTcp)]
        self._apply([e for e in effects if not isinstance(e, SendTcp)])
        results = await asyncio.gather(*(self._push_pull(e) for e in pushes))
        return sum(results)

    async def join_specs(self, specs: Sequence[str]) -> int:
        """Resolve `--join`-style specs once and join them (POST /cluster/join)."""
        sources = [parse_join_spec(s) for s in specs]
        resolved = await asyncio.gather(*(s.resolve() for s in sources))
        addrs = list(dict.fromkeys(a for batch in resolved for a in batch))
        return await self.join([a for a in addrs if a != self.swim.addr]) if addrs else 0

    # ---- GossipReceiver: what the transport delivers ----

    def on_packet(self, addr: Addr, message: Message, sender: str | None) -> None:
        if self._swim is None or self._stopping:
            return
        checked = self.proofs.check(message, "udp", addr, sender)
        if checked is not None:
            self._apply(self._swim.handle(self._clock.now(), addr, checked, sender))

    def on_stream(self, addr: Addr, message: Message, sender: str | None) -> Message | None:
        if self._swim is None or self._stopping or not isinstance(message, PushPull):
            return None
        checked = self.proofs.check(message, "tcp", addr, sender)
        if checked is None:
            return None
        effects = self._swim.handle(self._clock.now(), addr, checked, sender)
        reply = next((e.message for e in effects if isinstance(e, ReplyTcp)), None)
        self._apply(effects)
        return self.proofs.sign(reply) if reply is not None else None

    # ---- the protocol timer ----

    def _arm(self, not_before: float = -math.inf) -> None:
        """Make the timer fire at the core's next deadline (moved only ever earlier)."""
        if self._swim is None or self._stopping:
            return
        due = max(self._swim.next_deadline(), not_before)
        if due >= self._timer_at:
            return  # the armed timer fires first; if the deadline moved later, it re-arms then
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = self._clock.call_at(due, self._on_timer) if due < math.inf else None

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        swim = self._swim
        if swim is None or self._stopping:
            return
        # The deadline may have moved later since the timer was armed (an ack came in); ticking
        # early does nothing then, which the core allows, and it saves a next_deadline() call.
        now = self._clock.now()
        try:
            effects = swim.tick(now)
        except Exception:
            self.timer_failures += 1
            log.exception("event=swim_timer_failed node_id=%s failures=%d", self.node_id,
                          self.timer_failures)
            self._arm(not_before=now + TIMER_FAILURE_BACKOFF)
            return
        self._apply(effects, not_before=now + MIN_TICK_GAP)

    # ---- effects ----

    def _apply(self, effects: list[Effect], not_before: float = -math.inf) -> None:
        """Perform the core's effects in order, then re-arm the timer."""
        transport = self._transport
        for effect in effects:
            if isinstance(effect, SendUdp):
                transport.send_packet(effect.addr, self.proofs.sign(effect.message))
            elif isinstance(effect, SendTcp):
                if not self._stopping:
                    self._spawn(self._push_pull_task(effect), "push-pull")
            elif isinstance(effect, MemberChanged):
                self._member_changed(effect)
            # ReplyTcp is consumed by on_stream, which answers on the connection.
        self._arm(not_before)

    def _member_changed(self, e: MemberChanged) -> None:
        m = e.member
        if log.isEnabledFor(logging.INFO):  # a 200-node simulation changes ~10^5 times
            old = e.old.label if e.old is not None else "-"
            log.info("event=member_changed node=%s addr=%s from=%s to=%s incarnation=%d",
                     m.node_id, format_addr(m.addr), old, e.new.label, m.incarnation)
        for listener in self._listeners:
            try:
                listener(m, e.old, e.new)
            except Exception:
                log.exception("event=listener_failed node=%s", m.node_id)

    async def _push_pull_task(self, effect: SendTcp) -> None:
        await self._push_pull(effect)

    async def _push_pull(self, effect: SendTcp) -> int:
        """Send one push-pull and merge the reply; 1 if the peer answered, else 0."""
        swim = self.swim
        where = format_addr(effect.addr)
        try:
            message, sender = await self._transport.exchange(
                effect.addr, self.proofs.sign(effect.message), swim.config.tcp_timeout)
        except WireError as exc:
            self.stats.drop("tcp", exc.reason, where, str(exc))
            return 0
        except PeerUnreachable as exc:
            log.debug("event=push_pull_failed peer=%s error=%s", where, exc)
            return 0
        if not isinstance(message, PushPull) or not message.reply:
            self.stats.drop("tcp", "decode", where, "push-pull answered with something else")
            return 0
        if self._swim is None:
            return 0
        checked = self.proofs.check(message, "tcp", effect.addr, sender)
        if checked is not None:
            self._apply(swim.handle(self._clock.now(), effect.addr, checked, sender))
        return 1

    # ---- tasks: join, mDNS ----

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=task_failed task=%s error=%r", task.get_name(), task.exception())

    async def _initial_join(self, sources: list[SeedSource]) -> None:
        outcome = await join_with_retry(
            sources, self.join, self.config.retry, exclude={self.swim.addr},
            sleep=lambda delay: sleep(self._clock, delay), monotonic=self._clock.now,
            rng=self._rng)
        if outcome.joined == 0:
            log.warning("event=join_failed node_id=%s attempts=%d", self.node_id, outcome.attempts)

    def _on_mdns_peer(self, peer: MdnsPeer) -> None:
        if self._swim is None or self._stopping:
            return
        known = self._swim.member(peer.node_id)
        if known is not None and known.status == Status.ALIVE:
            return
        if peer.node_id in self._mdns_joins or len(self._mdns_joins) >= MAX_MDNS_JOINS:
            return  # a live peer is found again through gossip or its next announcement
        self._mdns_joins.add(peer.node_id)
        self._spawn(self._join_quietly(peer), f"mdns-join-{peer.node_id}")

    async def _join_quietly(self, peer: MdnsPeer) -> None:
        addrs = peer.gossip_addrs
        try:
            joined = await self.join(addrs)
        finally:
            self._mdns_joins.discard(peer.node_id)
        log.info("event=mdns_join addrs=%s answered=%d",
                 ",".join(format_addr(a) for a in addrs), joined)


def _http_port(meta: Mapping[str, str]) -> int | None:
    http = meta.get("http", "")
    port = http.rsplit(":", 1)[-1] if ":" in http else ""
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None
