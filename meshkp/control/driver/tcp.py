"""TcpControlTransport: control messages between nodes over sealed TCP (the cluster keyring).

A dedicated listener, so that a heartbeat never queues behind a multi-MB replication batch:
its address is announced in the member meta as "control" = "host:port", and peers' addresses
come from the same meta (`resolve`). Frames carry only control types (60-69); the sender's id
rides in the frame, proven by its signature (meshkp/net/frameauth.py). Every message is one
frame sent without a reply (Raft's replies are messages of their own), on a persistent
connection per peer (link.py: a bounded queue, reconnects, counted drops): `send` never
blocks, and a peer that is slow or gone costs at most link.MAX_QUEUE queued messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from meshkp.control.driver.link import PeerLink
from meshkp.control.raft.messages import Message, decode_message, is_control_type
from meshkp.errors import ConfigError, WireError
from meshkp.net.addr import Addr, format_addr, parse_hostport
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.wire import Frame

log = logging.getLogger("meshkp.control")

CONTROL_META_KEY = "control"
# Seconds the listener gives a frame once started, and to connect; a heartbeat is tiny.
IO_TIMEOUT = 2.0
# Inbound connections: every member keeps one to each peer it talks to (the leader hears from
# all of them), so the listener admits more than the replication one; unproven connections
# still get only the slots outside TcpLimits.reserved_for_members.
MAX_CONNECTIONS = 256

Receive = Callable[[str, Message], None]
Resolve = Callable[[str], Addr | None]


def control_addr(meta: dict[str, str] | None) -> Addr | None:
    """The control address a member announced, or None."""
    try:
        return parse_hostport((meta or {}).get(CONTROL_META_KEY, ""), default_port=None)
    except ConfigError:
        return None


class TcpControlTransport:
    """A ControlTransport over TCP; `receive` gets what arrives (set before start)."""

    def __init__(self, bind: Addr, keyring: Keyring, auth: FrameAuth, resolve: Resolve,
                 stats: NetStats | None = None, limits: TcpLimits | None = None) -> None:
        self.limits = limits or TcpLimits(io_timeout=IO_TIMEOUT, max_connections=MAX_CONNECTIONS)
        self.stats = stats or NetStats()
        codec = SealedCodec(keyring, self.limits.frame_bytes, is_control_type, auth=auth)
        self.transport = TcpTransport(bind, codec, self._on_frame, self.stats, self.limits)
        self.resolve = resolve
        self.receive: Receive | None = None
        self.sent = 0
        self.dropped = 0
        self._links: dict[str, PeerLink] = {}

    async def start(self) -> Addr:
        return await self.transport.start()

    async def stop(self) -> None:
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
        await self.transport.stop()

    @property
    def local_addr(self) -> Addr:
        return self.transport.local_addr

    @property
    def connects(self) -> int:
        """Connections opened to peers so far (one per peer while links stay up)."""
        return sum(link.connects for link in self._links.values())

    def send(self, to: str, message: Message) -> None:
        if self.resolve(to) is None:
            self._drop("send_error", to, f"no control address for {to}")
            return
        link = self._links.get(to)
        if link is None:
            # Rotate before the listener's frame bound and close idle links before its idle
            # timeout (the same TcpLimits on every node), so no write goes into a closing socket.
            link = PeerLink(to, self.resolve, self.transport.seal, self._sent, self._drop,
                            frames_per_connection=self.limits.frames_per_connection - 1,
                            idle_close=self.limits.idle_timeout * 2 / 3)
            self._links[to] = link
        link.put(message)

    def _sent(self, nbytes: int) -> None:
        self.sent += 1
        self.stats.sent("tcp", nbytes)

    def _drop(self, reason: str, peer: str, detail: str) -> None:
        self.dropped += 1
        self.stats.drop("tcp", reason, peer, detail)

    async def _on_frame(self, addr: Addr, frame: Frame) -> Frame | None:
        if not frame.sender:
            self.stats.drop("tcp", "no_sender", format_addr(addr), "control frame without a sender id")
            return None
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self.stats.drop("tcp", exc.reason, format_addr(addr), str(exc))
            return None
        if self.receive is not None:
            self.receive(frame.sender, message)
        return None
