"""One OpenPGP packet: a tag and a body, written back with a canonical new-format header."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from operator import attrgetter


class Tag(IntEnum):
    """Packet tags meshkp knows by name (RFC 9580 §5)."""

    SIGNATURE = 2
    SECRET_KEY = 5
    PUBLIC_KEY = 6
    SECRET_SUBKEY = 7
    MARKER = 10
    TRUST = 12
    USER_ID = 13
    PUBLIC_SUBKEY = 14
    USER_ATTRIBUTE = 17
    PADDING = 21


@dataclass(frozen=True, slots=True, order=True)
class Packet:
    """A packet as (tag, body). Order is (tag, body), the SKS canonical order (DESIGN.md)."""

    tag: int
    body: bytes

    def encode(self) -> bytes:
        """Serialise with a new-format header and the shortest definite length (RFC 9580 §4.2.1)."""
        return bytes([0xC0 | self.tag]) + encode_length(len(self.body)) + self.body

    def __repr__(self) -> str:
        return f"Packet(tag={self.tag}, {len(self.body)} bytes)"


# The sort key of Packet's order: `sorted(packets, key=CANONICAL)` gives the same order as
# `sorted(packets)`, but compares in C instead of calling the dataclass's __lt__ per pair (a
# small key's digest and encoding sort ~10 pairs each on every upload, issue 14).
CANONICAL = attrgetter("tag", "body")


def encode_length(length: int) -> bytes:
    """New-format body length octets (RFC 9580 §4.2.1.1-3)."""
    if length < 192:
        return bytes([length])
    if length < 8384:
        length -= 192
        return bytes([(length >> 8) + 192, length & 0xFF])
    return b"\xff" + length.to_bytes(4, "big")
