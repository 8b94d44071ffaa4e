"""GossipTransport: how the membership driver reaches other nodes (memberlist's Transport).

One driver (MembershipService) runs over either implementation, as memberlist runs one
`Memberlist` over `NetTransport` or `MockTransport`:

- SocketTransport (meshkp/membership/sockets.py): sealed UDP datagrams and TCP push-pull;
- SimTransport (meshkp/sim/transport.py): the same sealed frames over an in-memory SimNetwork.

A transport owns sealing and decoding: the driver only ever sees valid SWIM messages. A frame
that fails to open or decode is counted and dropped below the driver. With each message it
passes the node id the frame's signature proves (`sender`), or None from a transport that signs
no frames (a cipher-free simulation), so the driver can hold messages to the node that sent them.
"""

from __future__ import annotations

from typing import Protocol

from meshkp.net.addr import Addr
from meshkp.swim.messages import Message


class GossipReceiver(Protocol):
    """What a transport delivers to (the driver). Both calls run in the event loop; keep quick."""

    def on_packet(self, addr: Addr, message: Message, sender: str | None) -> None:
        """A datagram from `addr`: best effort, maybe lost, late, reordered or duplicated."""
        ...

    def on_stream(self, addr: Addr, message: Message, sender: str | None) -> Message | None:
        """A request read from a stream connection; the message returned is the reply."""
        ...


class GossipTransport(Protocol):
    """Datagrams (probes, gossip) and request/reply streams (push-pull) between gossip addresses."""

    async def start(self, receiver: GossipReceiver) -> Addr:
        """Listen and deliver to `receiver`; return the address peers use to reach us."""
        ...

    async def stop(self) -> None:
        """Stop listening (idempotent); nothing reaches the receiver afterwards."""
        ...

    def send_packet(self, addr: Addr, message: Message) -> None:
        """Send one datagram, best effort; a failure is counted, never raised."""
        ...

    async def exchange(self, addr: Addr, message: Message,
                       timeout: float) -> tuple[Message, str | None]:
        """Send one request on a stream and return the reply and its proven sender.

        Raises PeerUnreachable (refused, cut off or no reply within `timeout` seconds) or
        WireError (the reply, or our own request, is not a valid frame).
        """
        ...
