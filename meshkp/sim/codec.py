"""Frame codecs for SimNetwork: the production sealing path, or a cheaper stand-in of equal size.

Each simulated endpoint owns a codec holding its keyring. `SealedFrames` runs the real
meshkp.net.wire encoding inside a meshkp.net.crypto keyring (NaCl SecretBox); `TaggedFrames`
keeps the same frame layout and sizes and the same drop reasons without the cipher.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import msgpack

from meshkp.errors import DecryptError, FrameTooLarge, WireError
from meshkp.net.crypto import KEY_ID_BYTES, SEAL_OVERHEAD, Keyring
from meshkp.net.frameauth import AUTH_BYTES, FrameAuth
from meshkp.net.wire import WIRE_VERSION, Frame, decode_frame, encode_frame
from meshkp.swim.fields import packb
from meshkp.swim.messages import Message, decode_message

DEFAULT_KEY = b"meshkp-simulated-cluster-key-32b"  # 32 bytes, like a real SecretBox key


class Codec(Protocol):
    """One endpoint's frames: seal with its primary key, open with any key of its keyring."""

    def pack(self, message: Message, limit: int) -> bytes:
        """Encode and seal; WireError (FrameTooLarge) above `limit` bytes."""
        ...

    def unpack(self, data: bytes, limit: int) -> tuple[Message, str | None]:
        """Open and decode: the message and the node id its signature proves (None for frames
        that are not signed); WireError (DecryptError for a foreign key) on any bad input."""
        ...

    def seal(self, plaintext: bytes) -> bytes:
        """Seal arbitrary plaintext with the primary key (to inject hand-made frames)."""
        ...


class SealedFrames:
    """The production path: meshkp.net.wire frames signed by the node's FrameAuth (when given)
    and sealed by a meshkp.net.crypto Keyring."""

    def __init__(self, keys: Sequence[bytes], auth: FrameAuth | None = None) -> None:
        self._keyring = Keyring(keys)
        self._channel = auth.channel() if auth is not None else None

    def pack(self, message: Message, limit: int) -> bytes:
        if self._channel is None:
            frame = encode_frame(Frame(message.TYPE, message.to_map()), limit - SEAL_OVERHEAD)
            return self._keyring.seal(frame)
        frame = encode_frame(Frame(message.TYPE, message.to_map(), self._channel.node_id),
                             limit - SEAL_OVERHEAD - AUTH_BYTES)
        return self._keyring.seal(self._channel.sign(frame))

    def unpack(self, data: bytes, limit: int) -> tuple[Message, str | None]:
        if len(data) > limit:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {limit}")
        plain = self._keyring.open(data)
        if self._channel is None:
            frame = decode_frame(plain, limit - SEAL_OVERHEAD)
            return decode_message(frame.type, frame.body), None
        body, stamp = self._channel.verify(plain)
        frame = self._channel.admit(decode_frame(body, limit - SEAL_OVERHEAD - AUTH_BYTES), stamp)
        return decode_message(frame.type, frame.body), frame.sender

    def seal(self, plaintext: bytes) -> bytes:
        return self._keyring.seal(plaintext)


class TaggedFrames:
    """A crypto-free stand-in: version, type, msgpack map, prefixed by a 4-byte key tag.

    Same sizes and the same drop reasons as SealedFrames (a foreign tag is a DecryptError), for
    a simulation that wants to skip the cipher's cost (about a tenth of its CPU).
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._tags = [hashlib.blake2b(k, digest_size=KEY_ID_BYTES).digest() for k in keys]
        self._codec_pad = bytes(SEAL_OVERHEAD - KEY_ID_BYTES)

    def pack(self, message: Message, limit: int) -> bytes:
        frame = bytes((WIRE_VERSION, message.TYPE)) + packb(message.to_map())
        if len(frame) + SEAL_OVERHEAD > limit:
            raise FrameTooLarge(f"frame type {message.TYPE} is too large for {limit} bytes")
        return self.seal(frame)

    def unpack(self, data: bytes, limit: int) -> tuple[Message, str | None]:
        if len(data) > limit:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {limit}")
        if len(data) < SEAL_OVERHEAD or data[:KEY_ID_BYTES] not in self._tags:
            raise DecryptError("frame sealed with a key outside this keyring")
        frame = data[SEAL_OVERHEAD:]
        if len(frame) < 3 or frame[0] != WIRE_VERSION:
            raise WireError("bad frame header")
        try:
            body = msgpack.unpackb(frame[2:], raw=False)
        except Exception as exc:  # msgpack raises many types; only WireError may escape
            raise WireError(f"undecodable msgpack body: {exc}") from exc
        return decode_message(frame[1], body), None  # no signature: no proven sender

    def seal(self, plaintext: bytes) -> bytes:
        return self._tags[0] + self._codec_pad + plaintext


def make_codec(keys: Sequence[bytes], sealed: bool = True, auth: FrameAuth | None = None) -> Codec:
    """The production sealing (SealedFrames, signed with `auth`), or the cipher-free
    TaggedFrames of equal sizes (without frame signatures: statements are still signed)."""
    return SealedFrames(keys, auth) if sealed else TaggedFrames(keys)
