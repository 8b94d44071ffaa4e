"""Replication over the encrypted TCP transport (meshkp/net/tcp.py), and peers from membership.

The replication listener is its own TcpTransport (sealed with the cluster keyring and signed by
the node's identity, frames up to TCP_FRAME_BYTES, replication types only), so large key batches
never queue behind SWIM's push-pull. Its address is announced in the membership meta as "sync" =
"host:port"; a member without it is reached on its gossip port + 1 (the default sync port).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from meshkp.errors import ConfigError, WireError
from meshkp.net.addr import Addr, format_addr, parse_hostport
from meshkp.net.codec import SealedCodec
from meshkp.net.compression import META_KEY as COMPRESSION_META_KEY
from meshkp.net.compression import META_VALUE as COMPRESSION_META_VALUE
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.wire import Frame
from meshkp.replication.messages import MESSAGE_TYPES, Message, decode_message
from meshkp.replication.peers import ByteMeter, PeerRef

log = logging.getLogger(__name__)

SYNC_META_KEY = "sync"
Handler = Callable[[str | None, Message], Any]  # async (sender node id, message) -> reply


class TcpChannel:
    """Channel over a TcpTransport: request/reply on kept connections, bytes metered."""

    def __init__(self, transport: TcpTransport) -> None:
        self.transport = transport

    async def request(
        self, peer: PeerRef, message: Message, timeout: float, meter: ByteMeter | None = None
    ) -> Message:
        def count(sent: int, received: int) -> None:  # the transport's own frame lengths
            if meter is not None:
                meter.sent += sent
                meter.received += received
                meter.requests += 1

        frame = Frame(message.TYPE, message.to_map())
        reply = await self.transport.request(peer.addr, frame, timeout, sizes=count,
                                             marked=peer.marks)
        return decode_message(reply.type, reply.body)


class ReplicationListener:
    """The replication TCP server: decodes frames and hands messages to the Replicator."""

    def __init__(
        self,
        bind: Addr,
        keyring: Keyring,
        auth: FrameAuth,
        stats: NetStats,
        limits: TcpLimits | None = None,
        compression: str = "none",
    ) -> None:
        self.limits = limits or TcpLimits()
        # `compression` governs what we send to peers that decode marks; we decode any frame.
        codec = SealedCodec(keyring, self.limits.frame_bytes, MESSAGE_TYPES.__contains__,
                            auth=auth, compression=compression,
                            compression_stats=stats.compression)
        self.stats = stats
        self.handler: Handler | None = None
        # Pushes and sync requests reuse their connection to a peer (meshkp/net/keepalive.py).
        self.transport = TcpTransport(bind, codec, self._on_request, stats, self.limits,
                                      keep_alive=True)
        self.channel = TcpChannel(self.transport)

    async def start(self) -> Addr:
        return await self.transport.start()

    async def stop(self) -> None:
        await self.transport.stop()

    async def _on_request(self, addr: Addr, frame: Frame) -> Frame | None:
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self.stats.drop("tcp", exc.reason, format_addr(addr), str(exc))
            return None
        if self.handler is None:
            return None
        # frame.sender is the verified signer of the frame (meshkp/net/frameauth.py).
        reply: Message | None = await self.handler(frame.sender, message)
        return Frame(reply.TYPE, reply.to_map()) if reply is not None else None


class MembershipPeers:
    """PeerSource over a MembershipService (meshkp/membership/service.py)."""

    def __init__(self, membership: Any, static: Sequence[PeerRef] = ()) -> None:
        self.membership = membership
        self.static = list(static)
        # The control plane's member count (voters + learners), once it runs; see cluster_size.
        self.configured: Callable[[], int] | None = None

    def alive_peers(self) -> list[PeerRef]:
        peers: list[PeerRef] = []
        for member in self.membership.alive_peers():
            try:
                addr = parse_hostport(member.meta.get(SYNC_META_KEY, ""), default_port=None)
            except ConfigError:  # no (or a malformed) announcement: the default sync port
                addr = (member.addr[0], member.addr[1] + 1)
            marks = member.meta.get(COMPRESSION_META_KEY) == COMPRESSION_META_VALUE
            peers.append(PeerRef(member.node_id, addr, marks))
        known = {p.addr for p in peers}
        return peers + [p for p in self.static if p.addr not in known]

    def cluster_size(self) -> int:
        counts: dict[str, int] = self.membership.counts()
        members = counts.get("alive", 0) + counts.get("suspect", 0) + counts.get("dead", 0)
        if members <= 1 and self.configured is not None:
            # Knowing no peer yet (just restarted, joins pending, or every frame refused for
            # clock skew) is not being alone: the control plane remembers the members, so
            # `all` and `quorum` still wait for them instead of acking on this node alone
            # (the chaos checker's stale reads after a leader restart).
            members = max(members, self.configured())
        return max(1, members) + len(self.static)
