"""Reading the scalar encodings of key and signature material (RFC 9580 §3.2, §3.2.1)."""

from __future__ import annotations

from meshkp.errors import MalformedPacket


class Reader:
    """A bounds-checked cursor over a packet body; every overrun is a MalformedPacket."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise MalformedPacket(
                f"{self.what}: needs {count} more bytes at offset {self.pos}, "
                f"has {len(self.data) - self.pos}; the packet is truncated"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def mpi(self) -> bytes:
        """An MPI's magnitude bytes (without the 2-octet bit count)."""
        bits = self.u16()
        return self.take((bits + 7) // 8)

    def oid(self) -> bytes:
        """A curve OID with its 1-octet length prefix (RFC 9580 §5.5.5.6); 0 and 0xFF are reserved."""
        length = self.u8()
        if length in (0, 0xFF):
            raise MalformedPacket(f"{self.what}: reserved curve OID length {length}")
        return self.take(length)

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk
