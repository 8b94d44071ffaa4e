"""asyncio UDP endpoint: sealed datagrams in, decoded Frames out to a handler; drops counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from meshkp.errors import ConfigError, WireError
from meshkp.net.addr import Addr, format_addr, is_ip_literal
from meshkp.net.codec import SealedCodec
from meshkp.net.stats import NetStats
from meshkp.net.wire import Frame

log = logging.getLogger(__name__)

FrameHandler = Callable[[Addr, Frame], None]

TRANSPORT = "udp"


class UdpTransport:
    """One UDP socket: `send(addr, frame)` seals and sends; received frames go to `on_frame`.

    `on_frame` runs synchronously in the event loop (the SWIM core is synchronous); anything it
    raises is caught, logged and counted as handler_error, so a peer's bytes never kill the loop.
    """

    def __init__(
        self,
        bind: Addr,
        codec: SealedCodec,
        on_frame: FrameHandler,
        stats: NetStats,
    ) -> None:
        self._bind = bind
        self._codec = codec
        self._on_frame = on_frame
        self._stats = stats
        self._transport: asyncio.DatagramTransport | None = None
        self._local: Addr | None = None

    @property
    def local_addr(self) -> Addr:
        """The bound (host, port); the port is real even when 0 was asked for."""
        if self._local is None:
            raise ConfigError("UDP transport is not started")
        return self._local

    async def start(self) -> Addr:
        """Bind the socket (idempotent) and return the bound address."""
        if self._transport is not None:
            return self.local_addr
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self._bind
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self._local = (sockname[0], sockname[1])
        log.info("event=udp_listening addr=%s", format_addr(self._local))
        return self._local

    async def stop(self) -> None:
        """Close the socket (idempotent)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            log.info("event=udp_closed addr=%s", format_addr(self.local_addr))

    def send(self, addr: Addr, frame: Frame) -> bool:
        """Seal and send one datagram; return False (and count why) if it was not sent."""
        if self._transport is None or self._transport.is_closing():
            self._stats.drop(TRANSPORT, "send_error", addr, "transport not running")
            return False
        if not is_ip_literal(addr[0]):
            # A hostname here would make sendto() resolve it synchronously, blocking the loop.
            self._stats.drop(TRANSPORT, "send_error", addr, "not an IP literal")
            return False
        try:
            data = self._codec.pack(frame)
        except WireError as exc:
            self._stats.drop(TRANSPORT, "send_oversize", addr, str(exc))
            return False
        self._transport.sendto(data, addr)
        self._stats.sent(TRANSPORT, len(data))
        return True

    def _deliver(self, data: bytes, peer: Addr) -> None:
        try:
            frame = self._codec.unpack(data)
        except WireError as exc:
            self._stats.drop(TRANSPORT, exc.reason, format_addr(peer), str(exc))
            return
        self._stats.received(TRANSPORT, len(data))
        try:
            self._on_frame(peer, frame)
        except Exception as exc:  # the protocol's bug must not take the socket down
            log.exception("event=udp_handler_failed peer=%s type=%d", format_addr(peer), frame.type)
            self._stats.drop(TRANSPORT, "handler_error", format_addr(peer), repr(exc))

    def _error(self, exc: Exception) -> None:
        # ICMP port-unreachable from an earlier send shows up here; it is normal when a peer died.
        self._stats.drop(TRANSPORT, "send_error", "-", repr(exc))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # IPv6 addresses come as (host, port, flowinfo, scope_id); the protocol wants (host, port).
        self._owner._deliver(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self._owner._error(exc)
