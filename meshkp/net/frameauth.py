"""FrameAuth: every frame signed by its sender's identity key, checked for sender and replay.

Inside the cluster-key box (meshkp/net/crypto.py), a frame of wire version 2 is:

    +-------------------------+---------+---------+---------+-----------+-------------+
    | wire frame (wire.py):   | key     | epoch   | seq     | sent at   | signature   |
    | version, type, msgpack  | 32 B    | 8 B     | 8 B     | 8 B (ms)  | 64 B        |
    | map with "_from"        | Ed25519 | boot ms | counter | wall time | of all left |
    +-------------------------+---------+---------+---------+-----------+-------------+

The signature (Ed25519, by the key in the trailer) covers everything before it. A receiver
checks it before decoding the map, then that the claimed sender id (`_from`) belongs to that
key (PeerKeys), then the replay window (ReplayGuard). A failure of any step is a WireError
("signature", "identity", "replay", "clock"), which the transport counts and drops.

Why signatures and not a pairwise X25519 key per peer: one Ed25519 verify costs ~50 us more
than the box per frame, which at SWIM's rates is well under 1 % of a core (docs/benchmarks.md),
while pairwise keys need a key agreement before the first frame (joins and first pings come
from strangers) and per-peer state on both sides. Signatures also let a frame prove its sender
to a node that has never talked to it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from meshkp.errors import BadSignature, IdentityMismatch, UnsupportedWireVersion, WireError
from meshkp.net.compression import PLAIN_MARK, ZLIB_MARK
from meshkp.net.identity import SIGNATURE_BYTES, NodeIdentity
from meshkp.net.peerkeys import PeerKeys
from meshkp.net.replay import ReplayGuard, ReplayLimits
from meshkp.net.wire import WIRE_VERSION, Frame

log = logging.getLogger("meshkp.net.identity")

KEY_BYTES = 32
_FIELD = 8
AUTH_BYTES = KEY_BYTES + 3 * _FIELD + SIGNATURE_BYTES  # 120: what signing adds to a frame

# What a signed frame starts with: the wire version, or a mark of compression.py.
_SIGNED_FIRST_BYTES = frozenset({bytes((WIRE_VERSION,)), bytes((ZLIB_MARK,)), bytes((PLAIN_MARK,))})


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a verified trailer says: who signed the frame, and when and in which order."""

    key: bytes
    epoch: int
    seq: int
    sent_at: float  # seconds of the sender's wall clock


class FrameAuth:
    """A node's identity for its transports: signs what it sends, checks what it receives.

    One per node, shared by its transports (gossip, replication, control), so that a key
    learnt on one holds on all. Each transport's codec takes its own `channel()`.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        peers: PeerKeys | None = None,
        *,
        replay: ReplayLimits | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.peers = peers or PeerKeys()
        self.peers.own(identity.node_id, identity.public_key)  # nobody else may claim our id
        self.replay = (replay or ReplayLimits()).validate()
        self.wall = wall
        # Boot epoch: the wall time of this process's start, so a restarted node's frames are
        # newer than its previous life's without persisting a sequence number.
        self.epoch = int(wall() * 1000)

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def channel(self) -> AuthChannel:
        """Signing and checking state for one transport (its own sequence and windows)."""
        return AuthChannel(self)


class AuthChannel:
    """The sequence numbers one transport sends and the replay windows of what it receives."""

    def __init__(self, auth: FrameAuth) -> None:
        self._auth = auth
        self._key = auth.identity.public_key
        self._prefix_epoch = auth.epoch.to_bytes(_FIELD, "big")
        self._seq = itertools.count(1)  # next() is atomic: big frames are signed in a thread
        self._guard = ReplayGuard(auth.replay)
        self._verify_keys: dict[bytes, nacl.signing.VerifyKey] = {}

    @property
    def node_id(self) -> str:
        return self._auth.node_id

    def sign(self, plain: bytes) -> bytes:
        """The wire frame `plain` with its signed trailer appended."""
        seq = next(self._seq)
        sent_ms = int(self._auth.wall() * 1000)
        signed = b"".join((plain, self._key, self._prefix_epoch, seq.to_bytes(_FIELD, "big"),
                           sent_ms.to_bytes(_FIELD, "big")))
        return signed + self._auth.identity.sign(signed)

    def verify(self, data: bytes) -> tuple[bytes, Stamp]:
        """The wire frame inside `data` and its stamp; BadSignature unless the signature holds.

        Pure (no state but a cache of parsed keys): big frames are verified in a thread.
        """
        # A marked frame (compression.py) signs the marked bytes: the mark replaces the version.
        if data[:1] not in _SIGNED_FIRST_BYTES:
            # An older node's frame (unsigned): a clear "version" drop, not a bad signature.
            raise UnsupportedWireVersion(f"wire version {data[0] if data else None}, this node "
                                         f"speaks {WIRE_VERSION} (signed frames); upgrade it")
        if len(data) < AUTH_BYTES:
            raise WireError(f"frame is {len(data)} bytes, shorter than its signed trailer")
        signed, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
        at = len(signed) - (KEY_BYTES + 3 * _FIELD)
        key = signed[at:at + KEY_BYTES]
        try:
            self._verify_key(key).verify(signed, signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise BadSignature("frame signature does not verify with the key it names") from exc
        fields = signed[at + KEY_BYTES:]
        epoch = int.from_bytes(fields[:_FIELD], "big")
        seq = int.from_bytes(fields[_FIELD:2 * _FIELD], "big")
        sent_ms = int.from_bytes(fields[2 * _FIELD:], "big")
        return signed[:at], Stamp(key, epoch, seq, sent_ms / 1000)

    def _verify_key(self, key: bytes) -> nacl.signing.VerifyKey:
        vk = self._verify_keys.get(key)
        if vk is None:
            vk = nacl.signing.VerifyKey(key)
            if len(self._verify_keys) < self._auth.replay.max_senders:
                self._verify_keys[key] = vk
        return vk

    def admit(self, frame: Frame, stamp: Stamp) -> Frame:
        """`frame` if its sender id belongs to the signing key and it is no replay; else raise."""
        sender = frame.sender
        if not sender:
            raise IdentityMismatch("frame names no sender")
        if not self._auth.peers.bind(sender, stamp.key):
            raise IdentityMismatch(f"frame claims sender {sender!r} but is signed by key "
                                   f"{stamp.key[:8].hex()}, which is not that node's key")
        self._guard.check(stamp.key, stamp.epoch, stamp.seq, stamp.sent_at, self._auth.wall())
        return frame
