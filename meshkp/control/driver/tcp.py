"""TcpControlTransport: control messages between nodes over sealed TCP (the cluster keyring).

A dedicated listener, so that a heartbeat never queues behind a multi-MB replication batch:
its address is announced in the member meta as "control" = "host:port", and peers' addresses
come from the same meta (`resolve`). Frames carry only control types (60-69); the sender's id
rides in the frame, proven by its signature (meshkp/net/frameauth.py). Every message is one
frame sent without a reply (Raft's replies are messages of their own), each on its own task:
`send` never blocks.
A peer that is slow or gone costs at most MAX_INFLIGHT_PER_PEER pending sends; more are
dropped, which Raft tolerates (it resends on the next heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from meshkp.control.raft.messages import Message, decode_message, is_control_type
from meshkp.errors import ConfigError, MeshkpError, WireError
from meshkp.net.addr import Addr, format_addr, parse_hostport
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.wire import Frame

log = logging.getLogger("meshkp.control")

CONTROL_META_KEY = "control"
# Sends in flight to one peer; beyond it messages are dropped (a stopped peer must not hold
# the node's sockets). A heartbeat round is one message per peer.
MAX_INFLIGHT_PER_PEER = 8
# Seconds to connect and write one message; a later heartbeat supersedes a late one anyway.
SEND_TIMEOUT = 0.5

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
        self.limits = limits or TcpLimits(io_timeout=SEND_TIMEOUT * 4, max_outbound=128)
        self.stats = stats or NetStats()
        codec = SealedCodec(keyring, self.limits.frame_bytes, is_control_type, auth=auth)
        self.transport = TcpTransport(bind, codec, self._on_frame, self.stats, self.limits)
        self.resolve = resolve
        self.receive: Receive | None = None
        self.sent = 0
        self.dropped = 0
        self._inflight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Addr:
        return await self.transport.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.stop()

    @property
    def local_addr(self) -> Addr:
        return self.transport.local_addr

    def send(self, to: str, message: Message) -> None:
        addr = self.resolve(to)
        if addr is None or self._inflight.get(to, 0) >= MAX_INFLIGHT_PER_PEER:
            self.dropped += 1
            return
        self._inflight[to] = self._inflight.get(to, 0) + 1
        task = asyncio.get_running_loop().create_task(self._send(to, addr, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, to: str, addr: Addr, message: Message) -> None:
        try:
            await self.transport.send(addr, Frame(message.TYPE, message.to_map()), SEND_TIMEOUT)
            self.sent += 1
        except MeshkpError as exc:
            self.dropped += 1
            log.debug("event=control_send_failed to=%s addr=%s error=%s", to, format_addr(addr), exc)
        finally:
            left = self._inflight.get(to, 1) - 1
            if left > 0:
                self._inflight[to] = left
            else:
                self._inflight.pop(to, None)

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
