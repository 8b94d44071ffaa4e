"""An in-process Channel between Replicators, through the real frame codec (tests, simulations).

Every request and reply is encoded with meshkp.net.wire and decoded again, so the messages'
validation runs exactly as on TCP; only sealing and sockets are left out. Nodes can be marked
down (requests raise PeerUnreachable), and raw frames can be injected to test a hostile peer.
"""

from __future__ import annotations

from typing import Any

from meshkp.errors import PeerUnreachable, WireError
from meshkp.net.crypto import SEAL_OVERHEAD
from meshkp.net.frameauth import AUTH_BYTES
from meshkp.net.tcp import LENGTH_BYTES
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame
from meshkp.replication.messages import Message, decode_message
from meshkp.replication.peers import ByteMeter, PeerRef

# Length prefix, sealing and the frame's signature trailer, as on TCP (~170 bytes a frame).
_OVERHEAD = LENGTH_BYTES + SEAL_OVERHEAD + AUTH_BYTES


class LoopbackNetwork:
    """Replicators by node id; `channel(owner)` gives the Channel a node sends through."""

    def __init__(self) -> None:
        self.nodes: dict[str, Any] = {}  # node id -> Replicator
        self.down: set[str] = set()
        self.dropped = 0

    def add(self, node_id: str, replicator: Any) -> None:
        self.nodes[node_id] = replicator

    def channel(self, owner: str) -> LoopbackChannel:
        return LoopbackChannel(self, owner)

    async def deliver(self, sender: str, target: str, data: bytes) -> bytes | None:
        """Hand an encoded frame to `target` as from `sender`; its encoded reply, if any."""
        if target in self.down or target not in self.nodes or sender in self.down:
            raise PeerUnreachable(f"{target} is down")
        try:
            frame = decode_frame(data, TCP_FRAME_BYTES)
            message = decode_message(frame.type, frame.body)
        except WireError:
            self.dropped += 1
            return None
        reply = await self.nodes[target].handle(sender, message)
        if reply is None:
            return None
        return encode_frame(Frame(reply.TYPE, reply.to_map()), TCP_FRAME_BYTES)


class LoopbackChannel:
    """The Channel of one node on a LoopbackNetwork."""

    def __init__(self, network: LoopbackNetwork, owner: str) -> None:
        self.network = network
        self.owner = owner

    async def request(
        self, peer: PeerRef, message: Message, timeout: float, meter: ByteMeter | None = None
    ) -> Message:
        data = encode_frame(Frame(message.TYPE, message.to_map()), TCP_FRAME_BYTES)
        reply = await self.network.deliver(self.owner, peer.node_id, data)
        if reply is None:
            raise PeerUnreachable(f"{peer.node_id} sent no reply")
        if meter is not None:
            meter.sent += len(data) + _OVERHEAD
            meter.received += len(reply) + _OVERHEAD
            meter.requests += 1
        frame = decode_frame(reply, TCP_FRAME_BYTES)
        return decode_message(frame.type, frame.body)
