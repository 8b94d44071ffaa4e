"""Signed frames: the sender proven by its key, replays and skewed clocks dropped (issue 12)."""

from __future__ import annotations

import pytest

from meshkp.errors import (
    BadSignature,
    DecryptError,
    FrameClockSkew,
    IdentityMismatch,
    ReplayedFrame,
    UnsupportedWireVersion,
)
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import AUTH_BYTES, FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.peerkeys import PeerKeys
from meshkp.net.replay import ReplayGuard, ReplayLimits
from meshkp.net.wire import Frame

KEY = generate_key()


class Wall:
    """A settable wall clock."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def codec(identity: NodeIdentity, wall: Wall, **replay: float) -> SealedCodec:
    auth = FrameAuth(identity, wall=wall, replay=ReplayLimits(**replay))  # type: ignore[arg-type]
    return SealedCodec(Keyring([KEY]), 4096, auth=auth)


def test_a_frame_names_its_real_sender_and_round_trips() -> None:
    wall = Wall()
    a, b = codec(NodeIdentity.generate("a"), wall), codec(NodeIdentity.generate("b"), wall)
    frame = b.unpack(a.pack(Frame(7, {"x": 1})))
    assert frame == Frame(7, {"x": 1}, "a")


def test_a_claimed_sender_that_is_not_the_signing_key_is_refused() -> None:
    wall = Wall()
    n1 = NodeIdentity.generate()  # a derived id: hash of its key
    receiver = codec(NodeIdentity.generate("r"), wall)
    receiver.unpack(codec(n1, wall).pack(Frame(1, {})))  # n1 itself: fine
    # Mallory holds the cluster key and an identity of her own, and claims n1's id.
    mallory = NodeIdentity.generate(n1.node_id)
    with pytest.raises(IdentityMismatch):
        receiver.unpack(codec(mallory, wall).pack(Frame(1, {})))


def test_a_configured_id_is_pinned_to_the_first_key_seen() -> None:
    wall = Wall()
    receiver = codec(NodeIdentity.generate("r"), wall)
    receiver.unpack(codec(NodeIdentity.generate("n1"), wall).pack(Frame(1, {})))
    with pytest.raises(IdentityMismatch):
        receiver.unpack(codec(NodeIdentity.generate("n1"), wall).pack(Frame(1, {})))
    # Nobody may claim the receiver's own id either.
    with pytest.raises(IdentityMismatch):
        receiver.unpack(codec(NodeIdentity.generate("r"), wall).pack(Frame(1, {})))


def test_a_tampered_signature_or_body_is_refused() -> None:
    wall = Wall()
    keyring = Keyring([KEY])
    a, b = codec(NodeIdentity.generate("a"), wall), codec(NodeIdentity.generate("b"), wall)
    plain = keyring.open(a.pack(Frame(1, {"x": 1})))
    forged = plain[:-1] + bytes([plain[-1] ^ 1])
    with pytest.raises(BadSignature):
        b.unpack(keyring.seal(forged))
    changed = plain.replace(b"\x01", b"\x02", 1)  # the type byte... or anything signed
    with pytest.raises((BadSignature, UnsupportedWireVersion)):
        b.unpack(keyring.seal(changed))


def test_a_replay_is_dropped_a_second_later_and_a_minute_later() -> None:
    wall = Wall()
    a, b = codec(NodeIdentity.generate("a"), wall), codec(NodeIdentity.generate("b"), wall)
    captured = a.pack(Frame(1, {"dead": "n1"}))
    b.unpack(captured)
    wall.t += 1.0
    with pytest.raises(ReplayedFrame):
        b.unpack(captured)
    wall.t += 59.0
    with pytest.raises(FrameClockSkew):
        b.unpack(captured)
    # Even a receiver that restarted (and forgot every window) drops it a minute later.
    with pytest.raises(FrameClockSkew):
        codec(NodeIdentity.generate("b"), wall).unpack(captured)


def test_frames_from_the_future_beyond_the_skew_bound_are_dropped() -> None:
    ahead = Wall(1_000_031.0)
    a = codec(NodeIdentity.generate("a"), ahead)
    with pytest.raises(FrameClockSkew):
        codec(NodeIdentity.generate("b"), Wall()).unpack(a.pack(Frame(1, {})))
    ahead.t = 1_000_029.0  # within 30 s: accepted
    codec(NodeIdentity.generate("b"), Wall()).unpack(a.pack(Frame(1, {})))


def test_a_restarted_sender_is_not_locked_out_but_its_old_life_is() -> None:
    wall = Wall()
    identity = NodeIdentity.generate("a")
    b = codec(NodeIdentity.generate("b"), wall)
    old = codec(identity, wall)
    for _ in range(5):
        b.unpack(old.pack(Frame(1, {})))
    late = old.pack(Frame(1, {}))
    wall.t += 2.0
    new = codec(identity, wall)  # a new process: new boot epoch, sequence from 1 again
    b.unpack(new.pack(Frame(1, {})))
    with pytest.raises(ReplayedFrame):
        b.unpack(late)  # a frame of the earlier life, even one never seen


def test_out_of_order_frames_within_the_window_are_accepted_once() -> None:
    guard = ReplayGuard(ReplayLimits(window=8))
    for seq in (5, 3, 4, 1, 9):
        guard.check(b"k", 1, seq, 0.0, 0.0)
    for seq in (3, 9, 1):  # 1 is 8 behind 9: outside the window now
        with pytest.raises(ReplayedFrame):
            guard.check(b"k", 1, seq, 0.0, 0.0)
    guard.check(b"k", 1, 8, 0.0, 0.0)
    guard.check(b"k", 1, 200, 0.0, 0.0)  # a jump clears the window
    with pytest.raises(ReplayedFrame):
        guard.check(b"k", 1, 199 - 8, 0.0, 0.0)


def test_senders_kept_are_bounded() -> None:
    guard = ReplayGuard(ReplayLimits(max_senders=3))
    for k in range(10):
        guard.check(bytes([k]), 1, 1, 0.0, 0.0)
    assert len(guard._windows) == 3


def test_an_old_version_frame_is_a_clear_version_drop() -> None:
    wall = Wall()
    b = codec(NodeIdentity.generate("b"), wall)
    # What a version-1 node sends: an unsigned frame under the same cluster key.
    for v1 in (b"\x01\x01\x80", b"\x01\x01\x80" + bytes(AUTH_BYTES)):
        with pytest.raises(UnsupportedWireVersion):
            b.unpack(Keyring([KEY]).seal(v1))
    with pytest.raises(DecryptError):
        b.unpack(Keyring([generate_key()]).seal(b"\x02\x01\x80"))


def test_pins_are_bounded_and_never_evicted() -> None:
    keys = PeerKeys(max_ids=2)
    a, b, c = (NodeIdentity.generate(n).public_key for n in "abc")
    assert keys.bind("a", a) and keys.bind("b", b)
    assert not keys.bind("c", c)  # full of pins: refused, not evicted
    assert keys.refused_full == 1 and keys.key_of("a") == a
    derived = NodeIdentity.generate()
    assert keys.bind(derived.node_id, derived.public_key)  # a derived id proves itself


def test_a_pin_reset_by_the_operator_lets_the_new_key_in_and_keeps_the_old_out() -> None:
    auth = FrameAuth(NodeIdentity.generate("self"))
    keys = auth.peers
    old, new, other = (NodeIdentity.generate("n2").public_key for _ in range(3))
    assert keys.bind("n2", old) and not keys.bind("n2", new)  # pinned to the first key
    assert keys.reset("n2", new) == old
    assert keys.bind("n2", new) and not keys.bind("n2", old)  # pinned to the key given
    assert keys.reset("n2") == new
    assert keys.bind("n2", other) and not keys.bind("n2", new)  # no key: the next seen
    assert keys.reset("self", other) is None  # our own id stays ours
    assert not keys.bind("self", other)
