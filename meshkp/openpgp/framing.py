"""Packet framing: legacy and new headers (RFC 9580 §4.2), split into `Packet`s.

Partial and indeterminate lengths are legal in messages but never in keys
(RFC 9580 §4.2.1.4 allows partial lengths only for data packets), so they are
rejected with a reason instead of being guessed at.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshkp.errors import LimitExceeded, MalformedPacket
from meshkp.openpgp.packet import Packet


def iter_packets(data: bytes, max_packet_bytes: int | None = None) -> Iterator[Packet]:
    """Yield the packets of a binary OpenPGP stream; raise MalformedPacket at the first bad header."""
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        tag, header_len, length = packet_header(view, pos, max_packet_bytes)
        pos += header_len
        yield Packet(tag, bytes(view[pos : pos + length]))
        pos += length


def parse_packets(data: bytes, max_packet_bytes: int | None = None) -> list[Packet]:
    """All packets of a binary stream (see iter_packets)."""
    return list(iter_packets(data, max_packet_bytes))


def packet_header(view: memoryview, start: int, max_packet_bytes: int | None = None) -> tuple[int, int, int]:
    """(tag, header length, body length) of the packet at `start`, whose body is checked to fit in `view`.

    Raises MalformedPacket for a bad or truncated header or body, LimitExceeded for a body
    over `max_packet_bytes`; both name the offset `start`.
    """
    first = view[start]
    if not first & 0x80:
        raise MalformedPacket(
            f"byte {start}: 0x{first:02x} is not a packet header (bit 7 clear); the input is damaged "
            "or not binary OpenPGP — armored text must start with -----BEGIN"
        )
    if first & 0x40:
        tag = first & 0x3F
        length, pos = _new_format_length(view, start + 1, start)
    else:
        tag = (first >> 2) & 0x0F
        length, pos = _legacy_length(view, start + 1, start, first & 0x03)
    if max_packet_bytes is not None and length > max_packet_bytes:
        raise LimitExceeded(
            f"byte {start}: packet of {length} bytes exceeds the limit of {max_packet_bytes}",
            limit="packet_bytes",
        )
    if pos + length > len(view):
        raise MalformedPacket(
            f"byte {start}: packet (tag {tag}) claims {length} bytes but only "
            f"{len(view) - pos} remain; the data is truncated (re-download or re-export it)"
        )
    return tag, pos - start, length


def _need(view: memoryview, pos: int, count: int, start: int) -> None:
    if pos + count > len(view):
        raise MalformedPacket(f"byte {start}: packet header is truncated; the data is cut short")


def _new_format_length(view: memoryview, pos: int, start: int) -> tuple[int, int]:
    # RFC 9580 §4.2.1: one, two or five octets.
    _need(view, pos, 1, start)
    octet = view[pos]
    if octet < 192:
        return octet, pos + 1
    if octet < 224:
        _need(view, pos, 2, start)
        return ((octet - 192) << 8) + view[pos + 1] + 192, pos + 2
    if octet == 255:
        _need(view, pos, 5, start)
        return int.from_bytes(view[pos + 1 : pos + 5], "big"), pos + 5
    raise MalformedPacket(
        f"byte {start}: partial body length in key material (RFC 9580 §4.2.1.4 allows it "
        "only in data packets); re-export the key with gpg --export"
    )


def _legacy_length(view: memoryview, pos: int, start: int, length_type: int) -> tuple[int, int]:
    # RFC 9580 §4.2.2: length type 3 (indeterminate) cannot delimit a key packet.
    if length_type == 3:
        raise MalformedPacket(
            f"byte {start}: indeterminate packet length is not allowed in key material; "
            "re-export the key with gpg --export"
        )
    size = (1, 2, 4)[length_type]
    _need(view, pos, size, start)
    return int.from_bytes(view[pos : pos + size], "big"), pos + size
