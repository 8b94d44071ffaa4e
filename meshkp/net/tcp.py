"""asyncio TCP server and client: length-prefixed sealed frames, bounded in size, time and count.

Timeouts use `asyncio.timeout()`, never `asyncio.wait_for()`: on Python 3.11 wait_for can swallow
a cancellation that races with completion (CPython gh-86296), which made stop() hang forever.

Stream layout: repeated [4-byte big-endian length][sealed frame of that length]. The length is
checked against the bound *before* the body is read, so a peer cannot make us buffer more.
A connection carries request/reply exchanges: the server reads a frame, the handler may return
a reply frame, and the server writes it back. Any bad frame closes the connection (there is no
safe way to resynchronise, and a peer that sends one is not trusted further).

Admission: a connection is *unproven* until a frame on it opens with the cluster key. Unproven
connections get `first_frame_timeout` to start that frame, at most `max_unproven_per_host` from
one address, and only the slots outside `reserved_for_members`; hosts that proved themselves
before (a bounded memory of recent senders) may use every slot. Without this, 64 idle
connections with no key at all held every slot for 30 s and blocked replication and joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meshkp.errors import ConfigError, FrameTooLarge, PeerUnreachable, WireError
from meshkp.net.addr import Addr, format_addr
from meshkp.net.codec import SealedCodec
from meshkp.net.keepalive import KeptConnections
from meshkp.net.stats import NetStats
from meshkp.net.wire import TCP_FRAME_BYTES, Frame

log = logging.getLogger(__name__)

RequestHandler = Callable[[Addr, Frame], Awaitable[Frame | None]]
WireSizes = Callable[[int, int], None]  # (bytes sent, bytes received), length prefixes included

TRANSPORT = "tcp"
LENGTH_BYTES = 4
# Frames above this size are sealed/opened/decoded in a worker thread: a 1 MB frame costs
# ~5 ms of crypto and msgpack, an 8 MB one ~50 ms, which must not stall the event loop
# (STYLE.md §10). PyNaCl and msgpack run in C, so the thread does not hold the loop back.
OFFLOAD_BYTES = 256 * 1024
# Hosts remembered as having sent a frame that opened (the members that talk to us); a bounded
# LRU, far above any planned mesh, so a key holder cannot grow it without end.
PROVEN_HOSTS = 4096


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Bounds of the TCP transport, each with what it protects against."""

    # Largest sealed frame, in bytes (see wire.TCP_FRAME_BYTES for why 8 MiB).
    frame_bytes: int = TCP_FRAME_BYTES
    # Concurrent inbound connections; more are closed at once and counted as conn_limit.
    # With frame_bytes this caps buffered input at 64 x 8 MiB. memberlist allows 128
    # concurrent push-pulls; a Python node on 2 cores is slower, so fewer.
    max_connections: int = 64
    # Seconds to read or write one whole frame once it has started, and to connect. A slowloris
    # peer trickling bytes is cut off here. memberlist's TCPTimeout is 10 s on the LAN profile.
    io_timeout: float = 10.0
    # Seconds a server connection may sit idle between frames before we close it.
    idle_timeout: float = 30.0
    # Frames per inbound connection before it is closed; bounds one peer's hold on a slot.
    frames_per_connection: int = 1024
    # Concurrent outbound requests; protects peers and our own file descriptors from bursts.
    max_outbound: int = 32
    # Seconds a new connection may take to start its first frame. Peers connect to send at once;
    # anyone slower is an idle or keyless connection holding a slot (red-team finding 3).
    first_frame_timeout: float = 2.0
    # Unproven connections from one address: one host cannot take every unproven slot. A peer
    # opens a few at a time (push-pull, replication pushes) and is proven after its first frame.
    max_unproven_per_host: int = 8
    # Slots only hosts that proved themselves before may take, so members get in during a flood.
    reserved_for_members: int = 16

    def validate(self) -> None:
        """Raise ConfigError if a bound is not positive."""
        for name in self.__slots__:
            if getattr(self, name) <= 0:
                raise ConfigError(f"tcp limit {name} must be positive")

    @property
    def unproven_slots(self) -> int:
        """Connections that unproven hosts may hold at once (at least one, for new nodes)."""
        return max(1, self.max_connections - self.reserved_for_members)


async def _read_sealed(
    reader: asyncio.StreamReader, limits: TcpLimits, idle: float
) -> bytes | None:
    """Read one length-prefixed body; None on clean EOF before a frame starts."""
    try:
        async with asyncio.timeout(idle):
            header = await reader.readexactly(LENGTH_BYTES)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise WireError("connection closed inside a frame header") from exc
    length = int.from_bytes(header, "big")
    if length > limits.frame_bytes:
        raise FrameTooLarge(f"frame announces {length} bytes, bound is {limits.frame_bytes}")
    try:
        async with asyncio.timeout(limits.io_timeout):
            return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise WireError(f"connection closed after {len(exc.partial)} of {length} bytes") from exc


async def _write_sealed(writer: asyncio.StreamWriter, data: bytes, timeout: float) -> None:
    writer.write(len(data).to_bytes(LENGTH_BYTES, "big") + data)
    async with asyncio.timeout(timeout):
        await writer.drain()


@dataclass(slots=True)
class _Admission:
    """One inbound connection's standing: proven once a frame on it opened."""

    proven: bool = False


class TcpTransport:
    """A TCP listener answering framed requests, plus a client for `request` and `send`."""

    def __init__(
        self,
        bind: Addr,
        codec: SealedCodec,
        on_request: RequestHandler,
        stats: NetStats,
        limits: TcpLimits | None = None,
        keep_alive: bool = False,
    ) -> None:
        self._bind = bind
        self._codec = codec
        self._on_request = on_request
        self._stats = stats
        self._limits = limits or TcpLimits()
        self._limits.validate()
        self._server: asyncio.Server | None = None
        self._local: Addr | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._unproven: Counter[str] = Counter()  # unproven connections per host
        self._proven_hosts: OrderedDict[str, None] = OrderedDict()
        self._outbound = asyncio.Semaphore(self._limits.max_outbound)
        # Requests reuse the connection of an earlier exchange with the same peer (keepalive.py).
        self._kept: KeptConnections | None = KeptConnections() if keep_alive else None

    @property
    def local_addr(self) -> Addr:
        """The bound (host, port)."""
        if self._local is None:
            raise ConfigError("TCP transport is not started")
        return self._local

    @property
    def active_connections(self) -> int:
        """Inbound connections being served right now."""
        return len(self._handlers)

    async def start(self) -> Addr:
        """Listen (idempotent) and return the bound address."""
        if self._server is not None:
            return self.local_addr
        host, port = self._bind
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        self._local = (sockname[0], sockname[1])
        log.info("event=tcp_listening addr=%s", format_addr(self._local))
        return self._local

    async def stop(self) -> None:
        """Stop listening and cancel connection handlers (idempotent)."""
        if self._kept is not None:
            self._kept.close_all()
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        log.info("event=tcp_closed addr=%s", format_addr(self.local_addr))

    # ---- server side ----

    def _refusal(self, host: str) -> str | None:
        """Why a new connection from `host` is refused now, or None to admit it."""
        limits = self._limits
        if len(self._handlers) >= limits.max_connections:
            return "too many connections"
        if host in self._proven_hosts:
            return None
        if sum(self._unproven.values()) >= limits.unproven_slots:
            return "unproven slots full (the rest are kept for members)"
        if self._unproven[host] >= limits.max_unproven_per_host:
            return f"over {limits.max_unproven_per_host} unproven connections from this host"
        return None

    def _proven(self, host: str) -> None:
        self._proven_hosts[host] = None
        self._proven_hosts.move_to_end(host)
        if len(self._proven_hosts) > PROVEN_HOSTS:
            self._proven_hosts.popitem(last=False)

    def _settle(self, host: str, unproven: bool) -> None:
        """The connection from `host` is no longer unproven (it proved itself, or it ended)."""
        if not unproven:
            return
        self._unproven[host] -= 1
        if self._unproven[host] <= 0:
            del self._unproven[host]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer: Addr = (str(peername[0]), int(peername[1])) if peername else ("?", 0)
        task = asyncio.current_task()
        refusal = "no task" if task is None else self._refusal(peer[0])
        if task is None or refusal is not None:
            self._stats.drop(TRANSPORT, "conn_limit", format_addr(peer), refusal or "no task")
            writer.close()
            return
        self._handlers.add(task)
        self._unproven[peer[0]] += 1
        state = _Admission()
        try:
            await self._serve_frames(peer, reader, writer, state)
        except asyncio.CancelledError:
            # stop() cancelled us. Python 3.11's stream callback calls task.exception() on this
            # task, which raises for a cancelled one and logs an error: end normally instead.
            if self._server is not None:
                raise
        finally:
            self._handlers.discard(task)
            self._settle(peer[0], not state.proven)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._limits.io_timeout):
                    await writer.wait_closed()

    async def _serve_frames(
        self, peer: Addr, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        state: _Admission,
    ) -> None:
        where = format_addr(peer)
        limits = self._limits
        for _ in range(limits.frames_per_connection):
            idle = limits.idle_timeout if state.proven else limits.first_frame_timeout
            try:
                data = await _read_sealed(reader, limits, idle)
                if data is None:
                    return
                frame, marked = await self._unpack(data)
            except WireError as exc:
                self._stats.drop(TRANSPORT, exc.reason, where, str(exc))
                return
            except TimeoutError:
                self._stats.drop(TRANSPORT, "timeout", where, "peer too slow or idle")
                return
            except OSError as exc:
                log.debug("event=tcp_read_failed peer=%s error=%r", where, exc)
                return
            self._stats.received(TRANSPORT, len(data))
            if not state.proven:
                state.proven = True
                self._settle(peer[0], True)
                self._proven(peer[0])
            try:
                reply = await self._on_request(peer, frame)
            except Exception as exc:  # the protocol's bug must not take the listener down
                log.exception("event=tcp_handler_failed peer=%s type=%d", where, frame.type)
                self._stats.drop(TRANSPORT, "handler_error", where, repr(exc))
                return
            if reply is None:
                continue
            try:
                sealed = await self._pack(reply, marked)  # a marked request: its sender decodes marks
            except WireError as exc:
                self._stats.drop(TRANSPORT, "send_oversize", where, str(exc))
                return
            try:
                await _write_sealed(writer, sealed, self._limits.io_timeout)
            except (OSError, TimeoutError) as exc:
                log.debug("event=tcp_write_failed peer=%s error=%r", where, exc)
                return
            self._stats.sent(TRANSPORT, len(sealed))

    # ---- client side ----

    async def _pack(self, frame: Frame, marked: bool = False) -> bytes:
        plain = self._codec.encode(frame, marked)
        if len(plain) <= OFFLOAD_BYTES:
            return self._codec.seal(plain, marked)
        return await asyncio.get_running_loop().run_in_executor(None, self._codec.seal, plain, marked)

    async def _unpack(self, data: bytes) -> tuple[Frame, bool]:
        """The admitted frame, and whether it came marked (codec.py)."""
        if len(data) <= OFFLOAD_BYTES:
            frame, stamp, marked = self._codec.open_marked(data)
        else:
            # Opening, verifying and inflating are pure; the replay window is kept on the loop.
            frame, stamp, marked = await asyncio.get_running_loop().run_in_executor(
                None, self._codec.open_marked, data)
        return self._codec.admit(frame, stamp), marked

    async def seal(self, frame: Frame) -> bytes:
        """The length-prefixed sealed and signed bytes of `frame`, for a caller that writes them
        on a connection of its own (a persistent stream); FrameTooLarge above the bound."""
        sealed = await self._pack(frame)
        if len(sealed) > self._limits.frame_bytes:
            raise FrameTooLarge(f"frame is {len(sealed)} bytes, bound {self._limits.frame_bytes}")
        return len(sealed).to_bytes(LENGTH_BYTES, "big") + sealed

    async def request(
        self, addr: Addr, frame: Frame, timeout: float | None = None, sizes: WireSizes | None = None,
        marked: bool = False,
    ) -> Frame:
        """Send one frame and return the peer's reply frame; `sizes` hears the bytes it took.
        `marked`: the peer decodes marked (maybe compressed) frames (meshkp/net/compression.py).

        Raises PeerUnreachable (connect/IO failure or timeout) or WireError (a bad reply, which
        is also counted as dropped). Raises WireError if our own frame is too large.
        """
        reply = await self._exchange(addr, frame, timeout, want_reply=True, sizes=sizes,
                                     marked=marked)
        if reply is None:
            raise PeerUnreachable(f"{format_addr(addr)} sent no reply")
        return reply

    async def send(self, addr: Addr, frame: Frame, timeout: float | None = None) -> None:
        """Send one frame without waiting for a reply; same errors as `request`."""
        await self._exchange(addr, frame, timeout, want_reply=False)

    async def _on_kept(self, addr: Addr, kept: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                       sealed: bytes, deadline: float) -> bytes | None:
        """The reply to `sealed` over a kept connection; None (and it is closed) if the peer
        had closed it before replying (EOF or reset), so a new connection should be tried."""
        reader, writer = kept
        try:
            async with asyncio.timeout(deadline):
                await _write_sealed(writer, sealed, deadline)
                data = await _read_sealed(reader, self._limits, deadline)
        except OSError:
            data = None
        except BaseException:
            writer.close()
            raise
        if data is None:
            writer.close()
            return None
        self._stats.sent(TRANSPORT, len(sealed))
        return data

    async def _exchange(
        self, addr: Addr, frame: Frame, timeout: float | None, want_reply: bool,
        sizes: WireSizes | None = None, marked: bool = False,
    ) -> Frame | None:
        sealed = await self._pack(frame, marked)
        if len(sealed) > self._limits.frame_bytes:
            raise FrameTooLarge(f"frame is {len(sealed)} bytes, bound {self._limits.frame_bytes}")
        where = format_addr(addr)
        deadline = timeout if timeout is not None else self._limits.io_timeout
        async with self._outbound:
            writer: asyncio.StreamWriter | None = None
            try:
                kept = self._kept.take(addr) if self._kept is not None and want_reply else None
                data = await self._on_kept(addr, kept, sealed, deadline) if kept else None
                if data is not None and kept is not None:
                    reader, writer = kept
                else:  # no kept connection, or the peer had closed it: a new one
                    async with asyncio.timeout(deadline):
                        reader, writer = await asyncio.open_connection(addr[0], addr[1])
                        await _write_sealed(writer, sealed, deadline)
                        self._stats.sent(TRANSPORT, len(sealed))
                        if not want_reply:
                            return None
                        data = await _read_sealed(reader, self._limits, deadline)
                    if data is None:
                        raise PeerUnreachable(f"{where} closed the connection without replying")
                reply, _ = await self._unpack(data)
                if self._kept is not None:
                    self._kept.keep(addr, (reader, writer))
                    writer = None  # kept open for the next request
            except WireError as exc:
                self._stats.drop(TRANSPORT, exc.reason, where, str(exc))
                raise
            except (OSError, TimeoutError) as exc:
                raise PeerUnreachable(f"{where} unreachable: {exc!r}") from exc
            finally:
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self._limits.io_timeout):
                            await writer.wait_closed()
        self._stats.received(TRANSPORT, len(data))
        if sizes is not None:
            sizes(LENGTH_BYTES + len(sealed), LENGTH_BYTES + len(data))
        return reply
