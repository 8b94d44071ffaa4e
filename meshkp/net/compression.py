"""Optional zlib of TCP frames, negotiated so that nodes of an older version still understand us.

A marked frame starts with one mark byte instead of the wire version (meshkp/net/wire.py):

    ZLIB_MARK  + zlib(wire frame)     compressed
    PLAIN_MARK + wire frame           not compressed, and the sender decodes ZLIB_MARK frames

Both marks are sent only to a peer that announced, in its member meta (`META_KEY`), that it
decodes them; a node of an older version announces nothing, gets plain frames, and never sees a
mark (it would drop one as an unknown wire version). A node answers a marked request with a
marked reply, compressed when its own `[cluster.replication] compression` is "zlib", so the
requester's and the responder's setting each govern only what that node sends.

The mark sits inside the signed and sealed bytes (codec.py: compress, then sign, then seal):
nothing is decompressed before its sender's signature verified, and decompression stops at the
frame bound, so a compressed frame cannot expand past what an uncompressed one may be.

Measured on real keys (docs/benchmarks.md "Compression of sync batches"): zlib takes sync
batches of keys to ~0.965 of their size, since keys are mostly signatures and key material,
which are random bytes. So the default stays "none".
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field

from meshkp.errors import FrameTooLarge, WireError

ZLIB_MARK = 0x7A  # "z"; never a wire version (those are small integers)
PLAIN_MARK = 0x70  # "p"
COMPRESSIONS = ("none", "zlib")
# Member meta key and value of a node that decodes marked frames.
META_KEY = "zc"
META_VALUE = "zlib"
# Frames below this are sent as they are: a push of one key, an ack, a Merkle step are small,
# and zlib's header and the CPU are not worth it there.
MIN_COMPRESS_BYTES = 1024
# zlib level 6 (its default): levels 7-9 cost several times the CPU for < 0.5% on keys.
ZLIB_LEVEL = 6


class DecompressError(WireError):
    """A frame marked compressed does not inflate (a bug of its sender, or damage)."""

    reason = "decode"


@dataclass(slots=True)
class CompressionStats:
    """What compression did on one transport: frames compressed and their bytes before/after."""

    frames_compressed: int = 0
    frames_not_smaller: int = 0  # tried, and sent plain because zlib did not make it smaller
    bytes_before: int = 0
    bytes_after: int = 0
    frames_inflated: int = 0
    # Big frames are sealed and opened on executor threads, several at a time.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, before: int, after: int | None) -> None:
        """One frame tried: sent compressed to `after` bytes, or (None) plain, not smaller."""
        with self.lock:
            if after is None:
                self.frames_not_smaller += 1
            else:
                self.frames_compressed += 1
                self.bytes_before += before
                self.bytes_after += after

    def snapshot(self) -> dict[str, int]:
        """A JSON-ready view (/cluster/sync/status "net")."""
        with self.lock:
            return {"frames_compressed": self.frames_compressed,
                    "frames_not_smaller": self.frames_not_smaller,
                    "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                    "frames_inflated": self.frames_inflated}

    def inflated(self) -> None:
        with self.lock:
            self.frames_inflated += 1


def mark(plain: bytes, compress: bool, stats: CompressionStats) -> bytes:
    """The marked form of a wire frame: zlib when asked, worth it and smaller, else plain."""
    if compress and len(plain) >= MIN_COMPRESS_BYTES:
        packed = zlib.compress(plain, ZLIB_LEVEL)
        if len(packed) < len(plain):
            stats.count(len(plain), len(packed) + 1)
            return bytes((ZLIB_MARK,)) + packed
        stats.count(len(plain), None)
    return bytes((PLAIN_MARK,)) + plain


def unmark(data: bytes, max_bytes: int, stats: CompressionStats) -> tuple[bytes, bool]:
    """(the wire frame, whether it was marked); inflation stops past max_bytes."""
    if not data or data[0] not in (ZLIB_MARK, PLAIN_MARK):
        return data, False
    if data[0] == PLAIN_MARK:
        return data[1:], True
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(data[1:], max_bytes + 1)
    except zlib.error as exc:
        raise DecompressError(f"a compressed frame does not inflate: {exc}") from None
    if len(plain) > max_bytes or inflater.unconsumed_tail:
        raise FrameTooLarge(f"a compressed frame inflates past the frame bound {max_bytes}")
    if not inflater.eof:
        raise DecompressError("a compressed frame is cut short")
    stats.inflated()
    return plain, True
