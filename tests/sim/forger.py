"""A hostile node for the simulation tier: it holds the cluster key and an identity of its own,
but not the identity of any member, and builds frames exactly as a real node would."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from meshkp.membership.proofs import Proofs
from meshkp.net.addr import Addr
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.sim.codec import DEFAULT_KEY, make_codec
from meshkp.swim.config import SwimConfig
from meshkp.swim.messages import Message

if TYPE_CHECKING:
    from meshkp.sim.cluster import SimCluster
    from tests.sim.conftest import MakeCluster

LAN = SwimConfig.lan()
MALLORY: Addr = ("10.9.9.9", 7946)  # the forger's address: no node of the sim has it


def started(sim: MakeCluster, n: int, seed: int) -> SimCluster:
    """A LAN-profile sim cluster of n nodes, converged."""
    cluster = sim(LAN, seed=seed)
    cluster.start(n)
    assert cluster.run_until(cluster.converged, timeout=30.0) is not None, "no convergence"
    return cluster


class Forger:
    """Signs frames (and its own statements) as `node_id`; signs nobody else's."""

    def __init__(self, wall: Callable[[], float], node_id: str = "mallory",
                 keys: Sequence[bytes] = (DEFAULT_KEY,)) -> None:
        self.identity = NodeIdentity.generate(node_id)
        self.auth = FrameAuth(self.identity, wall=wall)
        self.codec = make_codec(keys, auth=self.auth)
        self.proofs = Proofs(self.identity, self.auth.peers, NetStats())

    def frame(self, message: Message, limit: int = 1400) -> bytes:
        """One sealed, signed frame carrying `message` (our own statements in it signed)."""
        return self.codec.pack(self.proofs.sign(message), limit)


def peek(keys: Sequence[bytes], data: bytes) -> Message:
    """What a captured frame carries, opened with the cluster key (no replay check): what an
    eavesdropper holding the key can read, and re-send inside frames of its own."""
    from meshkp.net.crypto import Keyring
    from meshkp.net.frameauth import AUTH_BYTES
    from meshkp.net.wire import decode_frame
    from meshkp.swim.messages import decode_message

    plain = Keyring(keys).open(data)
    body = plain[:-AUTH_BYTES]
    frame = decode_frame(body, len(body))
    return decode_message(frame.type, frame.body)
