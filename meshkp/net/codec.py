"""Sealed frames: wire encoding, the sender's signature, keyring sealing; only WireError out.

    send:    encode (wire.py)  ->  [mark/compress]  ->  sign (frameauth.py)  ->  seal (crypto.py)
    receive: open  ->  verify signature  ->  [unmark/inflate]  ->  decode  ->  sender and replay check

Compression (compression.py) happens before sealing, since sealed bytes are random, and is
undone only after the signature verified. Only frames sent `marked` (to a peer that announced
it decodes marks) are compressed; every frame received may be marked.

`seal` and `open` are pure and may run in a worker thread for big frames; `admit` keeps the
replay windows and runs on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from meshkp.errors import FrameTooLarge, UnknownFrameType
from meshkp.net.compression import CompressionStats, mark, unmark
from meshkp.net.crypto import SEAL_OVERHEAD, Keyring
from meshkp.net.frameauth import AUTH_BYTES, FrameAuth, Stamp
from meshkp.net.wire import Frame, decode_frame, encode_frame


class SealedCodec:
    """Turns Frames into signed, sealed bytes of at most `max_sealed` and back."""

    def __init__(
        self,
        keyring: Keyring,
        max_sealed: int,
        accept_type: Callable[[int], bool] | None = None,
        *,
        auth: FrameAuth,
        compression: str = "none",
        compression_stats: CompressionStats | None = None,
    ) -> None:
        self.keyring = keyring
        self.max_sealed = max_sealed
        # Budget for the plaintext frame (header + msgpack map) once sealing and signing are paid.
        self.max_frame = max_sealed - SEAL_OVERHEAD - AUTH_BYTES
        self._accept_type = accept_type
        self._channel = auth.channel()
        self.compress = compression == "zlib"  # of marked frames we send
        self.compression_stats = compression_stats or CompressionStats()

    @property
    def node_id(self) -> str:
        """The id every frame of this codec carries as its sender."""
        return self._channel.node_id

    def pack(self, frame: Frame, marked: bool = False) -> bytes:
        """Encode, sign and seal; FrameTooLarge if the result would exceed the bound."""
        return self.seal(self.encode(frame, marked), marked)

    def encode(self, frame: Frame, marked: bool = False) -> bytes:
        """The plaintext wire frame, sent as this node (pack = seal(encode)); `marked`: to be
        sealed marked (a mark costs one byte, and zlib never sends more than the plain frame)."""
        bound = self.max_frame - 1 if marked else self.max_frame
        return encode_frame(Frame(frame.type, frame.body, self.node_id), bound)

    def seal(self, plain: bytes, marked: bool = False) -> bytes:
        """Mark (and maybe compress), sign and seal an encoded frame (pure: big frames do it in
        a thread). `marked` only for a peer that decodes marks (compression.py)."""
        if marked:
            plain = mark(plain, self.compress, self.compression_stats)
        return self.keyring.seal(self._channel.sign(plain))

    def open(self, data: bytes) -> tuple[Frame, Stamp]:
        """Check size, open, verify the signature, decode and check the type (pure)."""
        frame, stamp, _marked = self.open_marked(data)
        return frame, stamp

    def open_marked(self, data: bytes) -> tuple[Frame, Stamp, bool]:
        """`open`, and whether the frame was marked (its sender decodes marked replies)."""
        if len(data) > self.max_sealed:
            raise FrameTooLarge(f"sealed frame is {len(data)} bytes, bound is {self.max_sealed}")
        signed, stamp = self._channel.verify(self.keyring.open(data))
        plain, marked = unmark(signed, self.max_frame, self.compression_stats)
        frame = decode_frame(plain, self.max_frame)
        if self._accept_type is not None and not self._accept_type(frame.type):
            raise UnknownFrameType(f"frame type {frame.type} is not handled on this transport")
        return frame, stamp, marked

    def admit(self, frame: Frame, stamp: Stamp) -> Frame:
        """The frame if its sender owns the signing key and it is no replay; else WireError."""
        return self._channel.admit(frame, stamp)

    def unpack(self, data: bytes) -> Frame:
        """open + admit: one received frame, or a WireError subclass naming why not."""
        return self.admit(*self.open(data))
