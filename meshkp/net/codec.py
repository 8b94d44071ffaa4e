"""Sealed frames: wire encoding plus keyring sealing, one call each way, only WireError out."""

from __future__ import annotations

from collections.abc import Callable

from meshkp.errors import FrameTooLarge, UnknownFrameType
from meshkp.net.crypto import SEAL_OVERHEAD, Keyring
from meshkp.net.wire import Frame, decode_frame, encode_frame


class SealedCodec:
    """Turns Frames into sealed bytes of at most `max_sealed` and back."""

    def __init__(
        self,
        keyring: Keyring,
        max_sealed: int,
        accept_type: Callable[[int], bool] | None = None,
    ) -> None:
        self.keyring = keyring
        self.max_sealed = max_sealed
        # Budget for the plaintext frame (header + msgpack map) once sealing overhead is paid.
        self.max_frame = max_sealed - SEAL_OVERHEAD
        self._accept_type = accept_type

    def pack(self, frame: Frame) -> bytes:
        """Encode and seal; FrameTooLarge if the result would exceed the bound."""
        return self.keyring.seal(self.encode(frame))

    def encode(self, frame: Frame) -> bytes:
        """The plaintext frame (pack = seal(encode)); split so big frames can seal off-loop."""
        return encode_frame(frame, self.max_frame)

    def unpack(self, data: bytes) -> Frame:
        """Check size, open, decode and check the type; raise a WireError subclass on failure."""
        if len(data) > self.max_sealed:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {self.max_sealed}")
        frame = decode_frame(self.keyring.open(data), self.max_frame)
        if self._accept_type is not None and not self._accept_type(frame.type):
            raise UnknownFrameType(f"frame type {frame.type} is not handled on this transport")
        return frame
