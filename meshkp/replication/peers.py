"""Who replication talks to: peers from the live membership, and how requests reach them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from meshkp.net.addr import Addr
from meshkp.replication.messages import Message


@dataclass(frozen=True, slots=True)
class PeerRef:
    """A peer's node id and the address of its replication listener."""

    node_id: str
    addr: Addr
    # It announced that it decodes marked (maybe compressed) frames (meshkp/net/compression.py).
    marks: bool = False


class PeerSource(Protocol):
    """The live membership as replication needs it."""

    def alive_peers(self) -> list[PeerRef]:
        """Alive members other than this node that announce a replication address."""
        ...

    def cluster_size(self) -> int:
        """Members that count for quorum/all: every known member not gone (left), self included."""
        ...


class StaticPeers:
    """A fixed peer list (tests, and a node run without membership)."""

    def __init__(self, peers: list[PeerRef] | None = None) -> None:
        self.peers: list[PeerRef] = list(peers or [])

    def alive_peers(self) -> list[PeerRef]:
        return list(self.peers)

    def cluster_size(self) -> int:
        return len(self.peers) + 1


@dataclass(slots=True)
class ByteMeter:
    """Bytes sent and received on behalf of one operation (a sync round, a push), as the
    channel saw them on the wire (length prefix and sealing included)."""

    sent: int = 0
    received: int = 0
    requests: int = 0


class Channel(Protocol):
    """Request/reply to a peer. Raises PeerUnreachable, or WireError for a bad reply."""

    async def request(
        self, peer: PeerRef, message: Message, timeout: float, meter: ByteMeter | None = None
    ) -> Message: ...
