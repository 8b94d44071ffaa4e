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
from meshkp.swim.fields import packb
from meshkp.swim.messages import Message, decode_message

# NaCl SecretBox: 24-byte nonce + 16-byte MAC, plus a 4-byte key id (meshkp.net.crypto).
SEAL_OVERHEAD = 44
DEFAULT_KEY = b"meshkp-simulated-cluster-key-32b"  # 32 bytes, like a real SecretBox key


class Codec(Protocol):
    """One endpoint's frames: seal with its primary key, open with any key of its keyring."""

    def pack(self, message: Message, limit: int) -> bytes:
        """Encode and seal; WireError (FrameTooLarge) above `limit` bytes."""
        ...

    def unpack(self, data: bytes, limit: int) -> Message:
        """Open and decode; WireError (DecryptError for a foreign key) on any bad input."""
        ...

    def seal(self, plaintext: bytes) -> bytes:
        """Seal arbitrary plaintext with the primary key (to inject hand-made frames)."""
        ...


class SealedFrames:
    """The production path: meshkp.net.wire frames sealed by a meshkp.net.crypto Keyring."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        from meshkp.net.crypto import Keyring

        self._keyring = Keyring(keys)

    def pack(self, message: Message, limit: int) -> bytes:
        from meshkp.net.wire import Frame, encode_frame

        frame = encode_frame(Frame(message.TYPE, message.to_map()), limit - SEAL_OVERHEAD)
        return self._keyring.seal(frame)

    def unpack(self, data: bytes, limit: int) -> Message:
        from meshkp.net.wire import decode_frame

        if len(data) > limit:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {limit}")
        frame = decode_frame(self._keyring.open(data), limit - SEAL_OVERHEAD)
        return decode_message(frame.type, frame.body)

    def seal(self, plaintext: bytes) -> bytes:
        return self._keyring.seal(plaintext)


class TaggedFrames:
    """A crypto-free stand-in: version, type, msgpack map, prefixed by a 4-byte key tag.

    Same sizes and the same drop reasons as SealedFrames (a foreign tag is a DecryptError), for
    when meshkp.net's crypto is unavailable or a simulation wants to skip the cipher's cost.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._tags = [hashlib.blake2b(k, digest_size=4).digest() for k in keys]
        self._codec_pad = bytes(SEAL_OVERHEAD - 4)

    def pack(self, message: Message, limit: int) -> bytes:
        frame = bytes((FRAME_VERSION, message.TYPE)) + packb(message.to_map())
        if len(frame) + SEAL_OVERHEAD > limit:
            raise FrameTooLarge(f"frame type {message.TYPE} is too large for {limit} bytes")
        return self.seal(frame)

    def unpack(self, data: bytes, limit: int) -> Message:
        if len(data) > limit:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {limit}")
        if len(data) < SEAL_OVERHEAD or data[:4] not in self._tags:
            raise DecryptError("frame sealed with a key outside this keyring")
        frame = data[SEAL_OVERHEAD:]
        if len(frame) < 3 or frame[0] != FRAME_VERSION:
            raise WireError("bad frame header")
        try:
            body = msgpack.unpackb(frame[2:], raw=False)
        except Exception as exc:  # msgpack raises many types; only WireError may escape
            raise WireError(f"undecodable msgpack body: {exc}") from exc
        return decode_message(frame[1], body)

    def seal(self, plaintext: bytes) -> bytes:
        return self._tags[0] + self._codec_pad + plaintext


FRAME_VERSION = 1


def make_codec(keys: Sequence[bytes], sealed: bool = True) -> Codec:
    """Real sealing when meshkp.net.crypto is importable (and asked for), else TaggedFrames."""
    if sealed:
        try:
            return SealedFrames(keys)
        except ImportError:
            pass
    return TaggedFrames(keys)
