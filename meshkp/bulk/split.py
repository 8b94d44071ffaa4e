"""Cut a binary keyring into one byte span per transferable key, reading packet headers only.

The parent process of `meshkp load` does this cheaply and ships the spans' bytes to worker
processes, which do the expensive parsing and signature checks. A transferable key starts
at each public key (or secret key) packet (RFC 9580 §10.1, §10.2). Framing errors are
raised here, before any key of the file is stored, so a damaged file changes nothing.
"""

from __future__ import annotations

import mmap

from meshkp.errors import LimitExceeded, MalformedPacket

# Packet tags that open a new transferable key: public key (6) and secret key (5).
KEY_START_TAGS = frozenset({5, 6})


def key_spans(data: bytes | memoryview | mmap.mmap, max_packet_bytes: int) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each key in a binary keyring; raise on a framing error.

    Packets before the first key packet form a span of their own, so that the worker
    rejects them with a reason instead of silently gluing them onto a key.
    """
    # Released on exit even when raising, so the caller's mmap can be closed afterwards.
    with memoryview(data) as view:
        return _walk(view, max_packet_bytes)


def _walk(view: memoryview, max_packet_bytes: int) -> list[tuple[int, int]]:
    end = len(view)
    spans: list[tuple[int, int]] = []
    key_start = 0
    pos = 0
    while pos < end:
        start = pos
        first = view[pos]
        if not first & 0x80:
            raise MalformedPacket(
                f"byte {start}: 0x{first:02x} is not a packet header (bit 7 clear); "
                "the file is damaged or is not an OpenPGP keyring"
            )
        if first & 0x40:
            tag = first & 0x3F
            length, pos = _new_length(view, pos + 1, start)
        else:
            tag = (first >> 2) & 0x0F
            length, pos = _legacy_length(view, pos + 1, start, first & 0x03)
        if length > max_packet_bytes:
            raise LimitExceeded(
                f"byte {start}: packet of {length} bytes exceeds the limit of {max_packet_bytes}",
                limit="packet_bytes",
            )
        if pos + length > end:
            raise MalformedPacket(
                f"byte {start}: packet (tag {tag}) claims {length} bytes but only {end - pos} "
                "remain; the file is truncated (re-download or re-export it)"
            )
        if tag in KEY_START_TAGS and start > key_start:
            spans.append((key_start, start))
            key_start = start
        pos += length
    if end > key_start:
        spans.append((key_start, end))
    return spans


def _need(view: memoryview, pos: int, count: int, start: int) -> None:
    if pos + count > len(view):
        raise MalformedPacket(f"byte {start}: packet header is truncated; the file is cut short")


def _new_length(view: memoryview, pos: int, start: int) -> tuple[int, int]:
    # RFC 9580 §4.2.1: one, two or five octets; partial lengths are not allowed in keys.
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
        f"byte {start}: partial body length in key material (RFC 9580 §4.2.1.4); "
        "re-export the keys with gpg --export"
    )


def _legacy_length(view: memoryview, pos: int, start: int, length_type: int) -> tuple[int, int]:
    # RFC 9580 §4.2.2: length type 3 (indeterminate) cannot delimit a key packet.
    if length_type == 3:
        raise MalformedPacket(
            f"byte {start}: indeterminate packet length in key material; "
            "re-export the keys with gpg --export"
        )
    size = (1, 2, 4)[length_type]
    _need(view, pos, size, start)
    return int.from_bytes(view[pos : pos + size], "big"), pos + size
