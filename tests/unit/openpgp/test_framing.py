"""Packet framing: legacy and new headers, lengths, and clear rejections."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import LimitExceeded, MalformedPacket
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Packet, encode_length


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (191, b"\xbf"),
        (192, b"\xc0\x00"),
        (8383, b"\xdf\xff"),
        (8384, b"\xff\x00\x00\x20\xc0"),
        (100000, b"\xff\x00\x01\x86\xa0"),
    ],
)
def test_new_format_length_octets_match_rfc_9580_examples(length: int, encoded: bytes) -> None:
    assert encode_length(length) == encoded


@given(st.lists(st.tuples(st.integers(1, 63), st.binary(max_size=9000)), max_size=5))
def test_encode_then_parse_round_trips(items: list[tuple[int, bytes]]) -> None:
    packets = [Packet(tag, body) for tag, body in items]
    assert parse_packets(b"".join(p.encode() for p in packets)) == packets


@pytest.mark.parametrize(
    ("header", "body_length"),
    [
        (bytes([0x80 | (13 << 2) | 0, 5]), 5),  # legacy, 1-octet length
        (bytes([0x80 | (13 << 2) | 1, 0, 5]), 5),  # legacy, 2-octet length
        (bytes([0x80 | (13 << 2) | 2, 0, 0, 0, 5]), 5),  # legacy, 4-octet length
    ],
)
def test_legacy_headers_are_read(header: bytes, body_length: int) -> None:
    assert parse_packets(header + b"alice") == [Packet(13, b"alice")]


def test_partial_body_length_is_rejected_with_reason() -> None:
    with pytest.raises(MalformedPacket, match="partial body length"):
        parse_packets(bytes([0xC0 | 13, 0xE1]) + b"ab")


def test_indeterminate_length_is_rejected_with_reason() -> None:
    with pytest.raises(MalformedPacket, match="indeterminate"):
        parse_packets(bytes([0x80 | (13 << 2) | 3]) + b"alice")


def test_truncated_body_names_the_shortfall() -> None:
    with pytest.raises(MalformedPacket, match="truncated"):
        parse_packets(bytes([0xC0 | 13, 10]) + b"abc")


def test_non_header_byte_is_rejected() -> None:
    with pytest.raises(MalformedPacket, match="not a packet header"):
        parse_packets(b"hello")


def test_packet_over_the_limit_names_the_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        parse_packets(Packet(13, b"x" * 100).encode(), max_packet_bytes=99)
    assert info.value.limit == "packet_bytes"


@given(st.binary(max_size=64))
def test_garbage_raises_only_typed_errors(data: bytes) -> None:
    try:
        parse_packets(data)
    except MalformedPacket:
        pass
