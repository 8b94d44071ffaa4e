"""SimNetwork: an in-memory UDP/TCP network on a FakeClock, with seeded faults.

Frames really are bytes: every message is encoded by a `Codec` (by default the frame layout of
DESIGN.md: version byte, type byte, msgpack map) and decoded by the receiver, so a malformed or
injected frame is dropped and counted exactly as a real transport would. Faults:

- loss (per datagram), delay with jitter (so datagrams reorder), duplicates;
- partitions: groups of addresses that cannot reach each other until `heal()`;
- pause: a paused process neither ticks nor reads its socket; datagrams wait in a bounded
  receive buffer (excess dropped) and are read in order on `resume()`, as after SIGSTOP/SIGCONT;
- cluster keys: each endpoint holds a keyring (primary key first); a frame sealed with a key the
  receiver does not hold fails authentication and is dropped and counted, like NaCl SecretBox.

TCP (push-pull) is reliable but obeys partitions, crashes, pauses and the caller's timeout.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

from meshkp.clock import FakeClock
from meshkp.errors import WireError
from meshkp.swim.messages import Message, decode_message, packb
from meshkp.swim.types import Addr

FRAME_VERSION = 1
# NaCl SecretBox adds a 24-byte nonce and a 16-byte MAC to every frame (counted in wire bytes).
SECRETBOX_OVERHEAD = 40
# A Linux UDP receive buffer (rmem_default, ~208 KiB) holds a few hundred small datagrams.
PAUSED_BUFFER_DATAGRAMS = 256
DEFAULT_KEY = b"meshkp-sim-cluster-key"


class Codec(Protocol):
    """Turns a message into frame bytes and back (decode raises WireError on bad input)."""

    def encode(self, message: Message) -> bytes: ...

    def decode(self, frame: bytes) -> Message: ...


class FrameCodec:
    """version byte, type byte, msgpack map: the frame body of DESIGN.md, minus encryption."""

    def __init__(self, max_frame_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_frame_bytes = max_frame_bytes

    def encode(self, message: Message) -> bytes:
        return bytes((FRAME_VERSION, message.TYPE)) + packb(message.to_map())

    def decode(self, frame: bytes) -> Message:
        if len(frame) < 3 or len(frame) > self.max_frame_bytes:
            raise WireError(f"frame of {len(frame)} bytes is outside 3..{self.max_frame_bytes}")
        if frame[0] != FRAME_VERSION:
            raise WireError(f"unsupported frame version {frame[0]}")
        try:
            body = msgpack.unpackb(frame[2:], raw=False)
        except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
            raise WireError(f"undecodable msgpack body: {exc}") from exc
        return decode_message(frame[1], body)


class Endpoint(Protocol):
    """What SimNetwork delivers to (a simulated node)."""

    def on_datagram(self, src: Addr, message: Message) -> None: ...

    def on_tcp_request(self, src: Addr, message: Message) -> Message | None: ...

    def on_tcp_reply(self, src: Addr, message: Message) -> None: ...

    def on_resume(self) -> None: ...


@dataclass
class NetStats:
    """Counters of what happened to frames; `dropped` breaks drops down by reason."""

    udp_sent: int = 0
    udp_delivered: int = 0
    tcp_sent: int = 0
    tcp_failed: int = 0
    duplicated: int = 0
    oversize: int = 0  # UDP frames above frame_limit: a bug in packing, tests assert zero
    dropped: Counter[str] = field(default_factory=Counter)
    bytes_sent: Counter[Addr] = field(default_factory=Counter)  # UDP + TCP wire bytes per source


@dataclass
class _Host:
    endpoint: Endpoint
    keys: tuple[bytes, ...]
    paused: bool = False
    backlog: list[Callable[[], None]] = field(default_factory=list)


class SimNetwork:
    """Seeded, deterministic network between Endpoints, driven by a FakeClock."""

    def __init__(
        self,
        clock: FakeClock,
        seed: int = 0,
        *,
        loss: float = 0.0,
        delay: float = 0.0005,
        jitter: float = 0.0,
        duplicate: float = 0.0,
        frame_limit: int = 1400,
        codec: Codec | None = None,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.duplicate = duplicate
        self.frame_limit = frame_limit
        self.codec: Codec = codec or FrameCodec()
        self.stats = NetStats()
        self._hosts: dict[Addr, _Host] = {}
        self._group: dict[Addr, int] = {}

    # --- topology -----------------------------------------------------------------------------

    def attach(self, addr: Addr, endpoint: Endpoint, keys: Sequence[bytes] = (DEFAULT_KEY,)) -> None:
        """Plug a process in at `addr`; `keys[0]` seals what it sends, all of `keys` open."""
        if not keys:
            raise ValueError("an endpoint needs at least one cluster key")
        self._hosts[addr] = _Host(endpoint, tuple(keys))

    def detach(self, addr: Addr) -> None:
        """The process at `addr` is gone (crash): frames to it vanish, TCP is refused."""
        self._hosts.pop(addr, None)

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
        frame = self.codec.encode(message)
        self._send_frame(src, dst, frame)

    def inject(self, src: Addr, dst: Addr, frame: bytes, key: bytes = DEFAULT_KEY) -> None:
        """Deliver raw bytes as if `src` had sent them sealed with `key` (fuzzing, forgery)."""
        self._schedule(src, dst, frame, key)

    def _send_frame(self, src: Addr, dst: Addr, frame: bytes) -> None:
        host = self._hosts.get(src)
        key = host.keys[0] if host is not None else DEFAULT_KEY
        wire = len(frame) + SECRETBOX_OVERHEAD
        self.stats.udp_sent += 1
        self.stats.bytes_sent[src] += wire
        if wire > self.frame_limit:
            self.stats.oversize += 1
        if self.loss and self.rng.random() < self.loss:
            self.stats.dropped["loss"] += 1
            return
        self._schedule(src, dst, frame, key)
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats.duplicated += 1
            self._schedule(src, dst, frame, key)

    def _latency(self) -> float:
        return self.delay + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)

    def _schedule(self, src: Addr, dst: Addr, frame: bytes, key: bytes) -> None:
        self.clock.call_later(self._latency(), lambda: self._arrive(src, dst, frame, key))

    def _arrive(self, src: Addr, dst: Addr, frame: bytes, key: bytes) -> None:
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
                host.backlog.append(lambda: self._arrive(src, dst, frame, key))
            return
        message = self._open(host, frame, key)
        if message is not None:
            self.stats.udp_delivered += 1
            host.endpoint.on_datagram(src, message)

    def _open(self, host: _Host, frame: bytes, key: bytes) -> Message | None:
        """Authenticate and decode a frame, counting the failures a real transport counts."""
        if key not in host.keys:
            self.stats.dropped["bad_key"] += 1
            return None
        try:
            return self.codec.decode(frame)
        except WireError:
            self.stats.dropped["decode"] += 1
            return None

    # --- TCP (push-pull) ----------------------------------------------------------------------

    def send_tcp(self, src: Addr, dst: Addr, message: Message, timeout: float) -> None:
        """One request/reply exchange; the reply reaches `src` only within `timeout`."""
        started = self.clock.now()
        frame = self.codec.encode(message)
        self.stats.tcp_sent += 1
        self.stats.bytes_sent[src] += len(frame) + SECRETBOX_OVERHEAD
        host = self._hosts.get(dst)
        if host is None or not self.reachable(src, dst):
            self.stats.tcp_failed += 1  # refused, or SYN lost in a partition: times out
            return
        key = self._key_of(src)

        def serve() -> None:
            target = self._hosts.get(dst)
            if target is None or not self.reachable(src, dst):
                self.stats.tcp_failed += 1
                return
            if target.paused:  # the kernel accepts; the process reads it when resumed
                target.backlog.append(serve)
                return
            request = self._open(target, frame, key)
            if request is None:
                self.stats.tcp_failed += 1
                return
            reply = target.endpoint.on_tcp_request(src, request)
            if reply is not None:
                self._reply(dst, src, reply, started + timeout)

        self.clock.call_later(self._latency(), serve)

    def _reply(self, server: Addr, client: Addr, reply: Message, deadline: float) -> None:
        frame = self.codec.encode(reply)
        self.stats.bytes_sent[server] += len(frame) + SECRETBOX_OVERHEAD
        key = self._key_of(server)

        def arrive() -> None:
            host = self._hosts.get(client)
            if host is None or not self.reachable(server, client):
                self.stats.tcp_failed += 1
                return
            if host.paused:
                host.backlog.append(arrive)
                return
            if self.clock.now() > deadline:
                self.stats.dropped["tcp_timeout"] += 1  # the client gave up on this exchange
                return
            message = self._open(host, frame, key)
            if message is not None:
                host.endpoint.on_tcp_reply(server, message)

        self.clock.call_later(self._latency(), arrive)

    def _key_of(self, addr: Addr) -> bytes:
        host = self._hosts.get(addr)
        return host.keys[0] if host is not None else DEFAULT_KEY
