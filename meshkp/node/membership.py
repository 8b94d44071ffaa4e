"""MembershipService: runs the sans-I/O Swim core on real UDP/TCP sockets, plus discovery.

It is the asyncio twin of meshkp/net/simcluster.SimNode: wake at `Swim.next_deadline()`, feed
every decoded frame to `Swim.handle()`, perform the effects. All tasks are tracked and cancelled
by `stop()`; nothing is fire-and-forget (STYLE.md §9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshkp.clock import Clock, SystemClock
from meshkp.discovery.backoff import RetryPolicy, SeedSource, join_with_retry
from meshkp.discovery.dns import parse_join_spec
from meshkp.discovery.mdns import MdnsDiscovery, MdnsPeer, validate_cluster_name
from meshkp.errors import ConfigError, PeerUnreachable, WireError
from meshkp.net.addr import DEFAULT_GOSSIP_PORT, Addr, format_addr, is_ip_literal
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.udp import UdpTransport
from meshkp.net.wire import Frame
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
from meshkp.swim.messages import MESSAGE_TYPES, Message, PushPull, decode_message
from meshkp.swim.protocol import Swim
from meshkp.swim.types import MemberInfo, Status

log = logging.getLogger(__name__)

ChangeListener = Callable[[MemberInfo, Status | None, Status], None]

INCARNATION_FILE = "incarnation"
UDP_TYPES = frozenset(t for t in MESSAGE_TYPES if t != PushPull.TYPE)
TCP_TYPES = frozenset({PushPull.TYPE})
# If the core's next deadline does not move past `now`, sleep at least this long (seconds)
# instead of spinning the event loop.
MIN_TICK_GAP = 0.001
# With gossip_port 0 the OS picks a free UDP port, which may be taken for TCP: try a few.
BIND_ATTEMPTS = 20
# Joins started by mDNS announcements at once. mDNS is unauthenticated: unbounded, a host on
# the LAN could make us queue one push-pull (a sealed copy of our member table) per announcement.
MAX_MDNS_JOINS = 8


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Where the gossip listener binds, how it finds peers, and the protocol profile."""

    # Address the UDP and TCP gossip listeners bind to ("0.0.0.0" = every interface).
    bind_host: str = "0.0.0.0"
    # Gossip port, UDP and TCP (memberlist/Serf default 7946). 0 picks a free port (tests).
    gossip_port: int = DEFAULT_GOSSIP_PORT
    # Address other nodes use to reach us; None = bind_host if it is specific, else the address
    # of the interface that routes outward.
    advertise_host: str | None = None
    # `--join` values: HOST:PORT, dns:NAME[:PORT], srv:NAME.
    join: tuple[str, ...] = ()
    # "static" (join list only), "dns" (same, the list holds dns:/srv: names) or "mdns".
    discovery: str = "static"
    # Cluster name announced and matched in mDNS TXT records.
    cluster_name: str = "meshkp"
    # Interface addresses mDNS is pinned to; None = all interfaces.
    mdns_interfaces: tuple[str, ...] | None = None
    swim: SwimConfig = field(default_factory=SwimConfig.lan)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tcp: TcpLimits = field(default_factory=TcpLimits)

    def validate(self) -> MembershipConfig:
        """Raise ConfigError for a bad combination; return self."""
        if self.discovery not in ("static", "dns", "mdns"):
            raise ConfigError(f"--discovery must be static, dns or mdns, got {self.discovery!r}")
        if not 0 <= self.gossip_port < 65536:
            raise ConfigError(f"--gossip-port must be 0-65535, got {self.gossip_port}")
        if self.advertise_host is not None and not is_ip_literal(self.advertise_host):
            raise ConfigError("advertise host must be an IP address")
        if self.discovery == "mdns":
            validate_cluster_name(self.cluster_name)  # else start() fails after binding
        self.swim.validate()
        self.retry.validate()
        self.tcp.validate()
        for spec in self.join:
            parse_join_spec(spec)
        return self


def outbound_ip(bind_host: str) -> str:
    """The IP other nodes should use for us: bind_host if specific, else the default route's."""
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    # connect() on UDP sends nothing; it only asks the kernel which source address it would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class MembershipService:
    """One node's membership: Swim core + transports + discovery; start()/stop() idempotent."""

    def __init__(
        self,
        config: MembershipConfig,
        identity: NodeIdentity,
        keyring: Keyring,
        *,
        meta: Mapping[str, str] | None = None,
        delegate: Delegate | None = None,
        data_dir: Path | None = None,
        clock: Clock | None = None,
        stats: NetStats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config.validate()
        self.identity = identity
        self.keyring = keyring
        self.stats = stats or NetStats()
        self._delegate = delegate or NullDelegate(meta)
        self._data_dir = data_dir
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._listeners: list[ChangeListener] = []
        self._swim: Swim | None = None
        self._udp: UdpTransport | None = None
        self._tcp: TcpTransport | None = None
        self._mdns: MdnsDiscovery | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._mdns_joins: set[str] = set()  # node ids an mDNS-triggered join is running for

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
            "net": self.stats.snapshot(),
        }

    def update_meta(self, changes: Mapping[str, str]) -> None:
        """Merge `changes` into our gossiped meta (e.g. {"sync": "ip:port"}); spreads at once."""
        swim = self.swim
        local = swim.member(self.node_id)
        meta = {**(local.meta if local is not None else {}), **changes}
        swim.update_meta(self._clock.now(), meta)
        self._wake.set()

    def add_listener(self, listener: ChangeListener) -> None:
        """Call listener(member, old, new) on every status change (synchronously, keep it quick)."""
        self._listeners.append(listener)

    # ---- lifecycle ----

    async def start(self) -> None:
        """Bind sockets, start the protocol timer and discovery, and begin joining (idempotent)."""
        if self._swim is not None:
            return
        cfg = self.config
        udp_codec = SealedCodec(self.keyring, cfg.swim.udp_frame_bytes, UDP_TYPES.__contains__)
        tcp_codec = SealedCodec(self.keyring, cfg.tcp.frame_bytes, TCP_TYPES.__contains__)
        udp_addr = await self._bind_transports(udp_codec, tcp_codec)
        try:
            await self._start_protocol(udp_addr)
        except BaseException:
            # E.g. mDNS cannot open its sockets: leave nothing bound or running, so that the
            # error is the whole outcome and start() can be retried.
            if self._swim is not None:
                await self.stop()
            else:
                for transport in (self._tcp, self._udp):
                    if transport is not None:
                        await transport.stop()
            raise

    async def _start_protocol(self, udp_addr: Addr) -> None:
        cfg = self.config
        host = cfg.advertise_host or outbound_ip(cfg.bind_host)
        incarnation = self._next_incarnation()
        self._swim = Swim(cfg.swim, self.node_id, (host, udp_addr[1]), self._clock.now(),
                          delegate=self._delegate, incarnation=incarnation, rng=self._rng)
        self._stopping = False
        log.info("event=membership_started node_id=%s addr=%s incarnation=%d discovery=%s",
                 self.node_id, format_addr(self.swim.addr), incarnation, cfg.discovery)
        self._spawn(self._timer_loop(), "swim-timer")
        sources: list[SeedSource] = [parse_join_spec(s) for s in cfg.join]
        if cfg.discovery == "mdns":
            self._mdns = MdnsDiscovery(
                cfg.cluster_name, self.node_id, udp_addr[1], advertise=[host],
                http_port=_http_port(self._delegate.node_meta()),
                interfaces=list(cfg.mdns_interfaces) if cfg.mdns_interfaces else None,
                on_peer=self._on_mdns_peer,
            )
            await self._mdns.start()
        if sources:
            self._spawn(self._initial_join(sources), "join")

    async def _bind_transports(self, udp_codec: SealedCodec, tcp_codec: SealedCodec) -> Addr:
        """Bind UDP, then TCP on the same port number; with port 0, retry until both fit."""
        cfg = self.config
        attempts = BIND_ATTEMPTS if cfg.gossip_port == 0 else 1
        where = f"{cfg.bind_host}:{cfg.gossip_port}"
        for attempt in range(1, attempts + 1):
            udp = UdpTransport((cfg.bind_host, cfg.gossip_port), udp_codec, self._on_udp,
                               self.stats)
            try:
                udp_addr = await udp.start()
            except OSError as exc:
                raise ConfigError(f"cannot bind gossip UDP {where}: {exc.strerror or exc}; "
                                  "pick another --gossip-port") from None
            tcp = TcpTransport((cfg.bind_host, udp_addr[1]), tcp_codec, self._on_tcp,
                               self.stats, cfg.tcp)
            try:
                await tcp.start()
            except OSError as exc:
                await udp.stop()
                if attempt == attempts:
                    raise ConfigError(
                        f"cannot bind gossip TCP {cfg.bind_host}:{udp_addr[1]}: "
                        f"{exc.strerror or exc}; pick another --gossip-port (replication "
                        "listens on gossip port + 1 by default)") from None
                continue
            self._udp, self._tcp = udp, tcp
            return udp_addr
        raise ConfigError(f"cannot bind gossip listeners on {where}")  # not reached

    async def stop(self) -> None:
        """Cancel tasks, close discovery and sockets (idempotent). Does not broadcast a leave."""
        if self._swim is None or self._stopping:
            return
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._mdns is not None:
            await self._mdns.stop()
            self._mdns = None
        for transport in (self._tcp, self._udp):
            if transport is not None:
                await transport.stop()
        self._save_incarnation(self.swim.incarnation)
        log.info("event=membership_stopped node_id=%s", self.node_id)
        self._swim = None

    async def leave(self, timeout: float | None = None) -> bool:
        """Broadcast LEFT and wait until it was gossiped (or timeout); True if fully sent."""
        swim = self.swim
        self._apply(swim.leave(self._clock.now()))
        limit = timeout if timeout is not None else swim.config.leave_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        def told_everyone() -> bool:
            # Alone (no alive or suspect peer), there is nobody to tell: do not wait.
            return swim.leave_broadcast_done or not any(
                m.status <= Status.SUSPECT and m.node_id != self.node_id for m in swim.members())

        while not told_everyone() and loop.time() < deadline:
            await asyncio.sleep(min(swim.config.gossip_interval, 0.05))
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

    # ---- internals ----

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=task_failed task=%s error=%r", task.get_name(), task.exception())

    async def _timer_loop(self) -> None:
        swim = self.swim
        while not self._stopping:
            now = self._clock.now()
            due = swim.next_deadline()
            if now >= due:
                self._apply(swim.tick(now))
                due = max(swim.next_deadline(), now + MIN_TICK_GAP)
            self._wake.clear()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow our stop() cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - self._clock.now())):
                    await self._wake.wait()

    async def _initial_join(self, sources: list[SeedSource]) -> None:
        outcome = await join_with_retry(sources, self.join, self.config.retry,
                                        exclude={self.swim.addr}, rng=self._rng)
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

    def _apply(self, effects: list[Effect]) -> None:
        udp = self._udp
        for effect in effects:
            if isinstance(effect, SendUdp):
                if udp is not None:
                    udp.send(effect.addr, _frame(effect.message))
            elif isinstance(effect, SendTcp):
                if not self._stopping:
                    self._spawn(self._push_pull_task(effect), "push-pull")
            elif isinstance(effect, MemberChanged):
                self._member_changed(effect)
            # ReplyTcp is consumed by _on_tcp, which owns the connection.
        self._wake.set()

    def _member_changed(self, e: MemberChanged) -> None:
        m = e.member
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
        tcp = self._tcp
        if tcp is None:
            return 0
        where = format_addr(effect.addr)
        try:
            reply = await tcp.request(effect.addr, _frame(effect.message), swim.config.tcp_timeout)
            message = decode_message(reply.type, reply.body)
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
        self._apply(swim.handle(self._clock.now(), effect.addr, message))
        return 1

    def _on_udp(self, addr: Addr, frame: Frame) -> None:
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self.stats.drop("udp", exc.reason, format_addr(addr), str(exc))
            return
        if self._swim is not None and not self._stopping:
            self._apply(self._swim.handle(self._clock.now(), addr, message))

    async def _on_tcp(self, addr: Addr, frame: Frame) -> Frame | None:
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self.stats.drop("tcp", exc.reason, format_addr(addr), str(exc))
            return None
        if self._swim is None or self._stopping or not isinstance(message, PushPull):
            return None
        effects = self._swim.handle(self._clock.now(), addr, message)
        reply = next((e.message for e in effects if isinstance(e, ReplyTcp)), None)
        self._apply(effects)
        return _frame(reply) if reply is not None else None

    def _next_incarnation(self) -> int:
        """Start above the incarnation of our previous life, so a restart is news at once."""
        if self._data_dir is None:
            return 1
        path = self._data_dir / INCARNATION_FILE
        try:
            previous = int(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            previous = 0
        incarnation = max(previous, 0) + 1
        self._save_incarnation(incarnation)
        return incarnation

    def _save_incarnation(self, incarnation: int) -> None:
        if self._data_dir is None:
            return
        path = self._data_dir / INCARNATION_FILE
        try:
            tmp = path.with_name(INCARNATION_FILE + ".tmp")
            tmp.write_text(f"{incarnation}\n", encoding="ascii")
            tmp.replace(path)
        except OSError as exc:
            log.warning("event=incarnation_save_failed path=%s error=%r", path, exc)


def _frame(message: Message) -> Frame:
    return Frame(message.TYPE, message.to_map())


def _http_port(meta: Mapping[str, str]) -> int | None:
    http = meta.get("http", "")
    port = http.rsplit(":", 1)[-1] if ":" in http else ""
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None
