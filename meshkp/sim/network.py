"""SimNetwork: an in-memory UDP/TCP network on a FakeClock, with seeded faults.

Frames really are bytes: each endpoint's `Codec` seals every message (by default with the
production path, meshkp.net.wire frames in a meshkp.net.crypto keyring) and the receiver's
codec opens and decodes it, so a malformed, forged or foreign-key frame is dropped and counted
exactly as a real transport would. `SimTraffic` counts what happened to every frame, for all
hosts together (each node's own transport counters are meshkp.net.stats.NetStats). Faults:

- loss (per datagram), delay with jitter (so datagrams reorder), duplicates;
- partitions: groups of addresses that cannot reach each other until `heal()`;
- pause: a paused process neither ticks nor reads its socket; datagrams wait in a bounded
  receive buffer (excess dropped) and are read in order on `resume()`, as after SIGSTOP/SIGCONT;
- cluster keys: each endpoint's codec holds a keyring (primary key first); a frame sealed with a
  key the receiver does not hold fails to open and is counted as dropped ("decrypt").

TCP (push-pull) is reliable but obeys partitions, crashes, pauses and the caller's timeout.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from meshkp.clock import Scheduler
from meshkp.errors import WireError
from meshkp.net.addr import Addr
from meshkp.net.wire import TCP_FRAME_BYTES, UDP_DATAGRAM_BYTES
from meshkp.sim.codec import DEFAULT_KEY, Codec, make_codec
from meshkp.swim.messages import Message

# A Linux UDP receive buffer (rmem_default, ~208 KiB) holds a few hundred small datagrams.
PAUSED_BUFFER_DATAGRAMS = 256

# A reply and the node id its signature proves (None when the codec signs no frames).
ReplyHandler = Callable[[Message, str | None], None]


class Endpoint(Protocol):
    """What SimNetwork delivers to (a simulated node)."""

    def on_datagram(self, src: Addr, message: Message, sender: str | None) -> None: ...

    def on_tcp_request(self, src: Addr, message: Message, sender: str | None) -> Message | None:
        ...

    def on_resume(self) -> None: ...


@dataclass
class SimTraffic:
    """What the simulated network did with frames, all hosts together; drops by reason."""

    udp_sent: int = 0
    udp_delivered: int = 0
    tcp_sent: int = 0
    tcp_failed: int = 0
    duplicated: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[Addr] = field(default_factory=Counter)  # UDP + TCP wire bytes per source

    @property
    def oversize(self) -> int:
        """UDP frames the sender could not fit in frame_limit (a packing bug: tests assert 0)."""
        return self.dropped["oversize_send"]


@dataclass
class _Host:
    endpoint: Endpoint
    codec: Codec
    paused: bool = False
    backlog: list[Callable[[], None]] = field(default_factory=list)


class SimNetwork:
    """Seeded, deterministic network between Endpoints, driven by a FakeClock."""

    def __init__(
        self,
        clock: Scheduler,
        seed: int = 0,
        *,
        loss: float = 0.0,
        delay: float = 0.0005,
        jitter: float = 0.0,
        duplicate: float = 0.0,
        frame_limit: int = UDP_DATAGRAM_BYTES,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.duplicate = duplicate
        self.frame_limit = frame_limit
        self.stats = SimTraffic()
        self._hosts: dict[Addr, _Host] = {}
        self._group: dict[Addr, int] = {}
        # Called with (src, dst, sealed bytes) for every datagram sent: an eavesdropper that
        # captures frames to replay them later with inject().
        self.taps: list[Callable[[Addr, Addr, bytes], None]] = []

    # --- topology -----------------------------------------------------------------------------

    def attach(self, addr: Addr, endpoint: Endpoint, codec: Codec | None = None) -> None:
        """Plug a process in at `addr`, sealing and opening frames with `codec`."""
        self._hosts[addr] = _Host(endpoint, codec or make_codec([DEFAULT_KEY]))

    def detach(self, addr: Addr) -> None:
        """The process at `addr` is gone (crash): frames to it vanish, TCP is refused."""
        self._hosts.pop(addr, None)

    def codec_of(self, addr: Addr) -> Codec:
        return self._hosts[addr].codec

    def partition(self, *groups: Iterable[Addr]) -> None:
        """Split the network: addresses in different groups (unlisted ones form one more) are cut."""
        self._group = {a: i for i, group in enumerate(groups, start=1) for a in group}

    def heal(self) -> None:
        self._group = {}

    def reachable(self, a: Addr, b: Addr) -> bool:
        return self._group.get(a, 0) == self._group.get(b, 0)

    def pause(self, addr: Addr) -> None:
        host = self._hosts.get(addr)
        if host is not None:
            host.paused = True

    def resume(self, addr: Addr) -> None:
        """Continue a paused process: it first reads its buffered frames, then runs its timers."""
        host = self._hosts.get(addr)
        if host is None or not host.paused:
            return
        host.paused = False
        backlog, host.backlog = host.backlog, []
        for deliver in backlog:
            deliver()
        host.endpoint.on_resume()

    def is_paused(self, addr: Addr) -> bool:
        host = self._hosts.get(addr)
        return host is not None and host.paused

    # --- UDP ----------------------------------------------------------------------------------

    def send_udp(self, src: Addr, dst: Addr, message: Message) -> None:
        host = self._hosts.get(src)
        if host is None:
            return  # a crashed process sends nothing
        try:
            data = host.codec.pack(message, self.frame_limit)
        except WireError as exc:
            self.stats.dropped[f"{exc.reason}_send"] += 1
            return
        self.stats.udp_sent += 1
        self.stats.bytes_sent[src] += len(data)
        for tap in self.taps:
            tap(src, dst, data)
        if self.loss and self.rng.random() < self.loss:
            self.stats.dropped["loss"] += 1
            return
        self._schedule(src, dst, data)
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats.duplicated += 1
            self._schedule(src, dst, data)

    def inject(self, src: Addr, dst: Addr, data: bytes) -> None:
        """Deliver raw datagram bytes as if `src` had sent them (forgery, fuzzing, replay)."""
        self._schedule(src, dst, data)

    def inject_tcp(self, src: Addr, dst: Addr, data: bytes) -> None:
        """Deliver raw bytes as a TCP request from `src` (forged push-pulls); the reply is lost."""
        def serve() -> None:
            server = self._hosts.get(dst)
            request = self._open(server, data, TCP_FRAME_BYTES) if server is not None else None
            if server is not None and request is not None:
                server.endpoint.on_tcp_request(src, *request)

        self.clock.call_later(self._latency(), serve)

    def _latency(self) -> float:
        return self.delay + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)

    def _schedule(self, src: Addr, dst: Addr, data: bytes) -> None:
        self.clock.call_later(self._latency(), lambda: self._arrive(src, dst, data))

    def _arrive(self, src: Addr, dst: Addr, data: bytes) -> None:
        host = self._hosts.get(dst)
        if host is None:
            self.stats.dropped["down"] += 1
            return
        if not self.reachable(src, dst):
            self.stats.dropped["partition"] += 1
            return
        if host.paused:
            if len(host.backlog) >= PAUSED_BUFFER_DATAGRAMS:
                self.stats.dropped["paused_buffer_full"] += 1
            else:
                host.backlog.append(lambda: self._arrive(src, dst, data))
            return
        opened = self._open(host, data, self.frame_limit)
        if opened is not None:
            self.stats.udp_delivered += 1
            host.endpoint.on_datagram(src, *opened)

    def _open(self, host: _Host, data: bytes, limit: int) -> tuple[Message, str | None] | None:
        """Open and decode a frame (and its proven sender), counting failures by reason as a
        real transport does."""
        try:
            return host.codec.unpack(data, limit)
        except WireError as exc:
            self.stats.dropped[exc.reason] += 1
            return None

    # --- TCP (push-pull) ----------------------------------------------------------------------

    def send_tcp(self, src: Addr, dst: Addr, message: Message, timeout: float,
                 on_reply: ReplyHandler) -> None:
        """One request/reply exchange; `on_reply` gets the reply if it reaches `src` in `timeout`.

        A refused or cut-off exchange calls nothing: the client finds out by its timeout.
        """
        client = self._hosts.get(src)
        if client is None:
            return
        started = self.clock.now()
        try:
            data = client.codec.pack(message, TCP_FRAME_BYTES)
        except WireError as exc:
            self.stats.dropped[f"{exc.reason}_send"] += 1
            return
        self.stats.tcp_sent += 1
        self.stats.bytes_sent[src] += len(data)
        if dst not in self._hosts or not self.reachable(src, dst):
            self.stats.tcp_failed += 1  # refused, or SYN lost in a partition: times out
            return

        def serve() -> None:
            server = self._hosts.get(dst)
            if server is None or not self.reachable(src, dst):
                self.stats.tcp_failed += 1
                return
            if server.paused:  # the kernel accepts; the process reads it when resumed
                server.backlog.append(serve)
                return
            request = self._open(server, data, TCP_FRAME_BYTES)
            if request is None:
                self.stats.tcp_failed += 1
                return
            reply = server.endpoint.on_tcp_request(src, *request)
            if reply is not None:
                self._reply(dst, src, reply, started + timeout, on_reply)

        self.clock.call_later(self._latency(), serve)

    def _reply(self, server: Addr, client: Addr, reply: Message, deadline: float,
               on_reply: ReplyHandler) -> None:
        host = self._hosts.get(server)
        if host is None:
            return
        try:
            data = host.codec.pack(reply, TCP_FRAME_BYTES)
        except WireError as exc:
            self.stats.dropped[f"{exc.reason}_send"] += 1
            return
        self.stats.bytes_sent[server] += len(data)

        def arrive() -> None:
            target = self._hosts.get(client)
            if target is None or not self.reachable(server, client):
                self.stats.tcp_failed += 1
                return
            if target.paused:
                target.backlog.append(arrive)
                return
            if self.clock.now() > deadline:
                self.stats.dropped["tcp_timeout"] += 1  # the client gave up on this exchange
                return
            opened = self._open(target, data, TCP_FRAME_BYTES)
            if opened is not None:
                on_reply(*opened)

        self.clock.call_later(self._latency(), arrive)
