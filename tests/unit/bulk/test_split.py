"""Cutting keyrings into keys by packet headers, and refusing damaged framing with its offset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.keygen import generate_key
from meshkp.bulk.split import key_spans
from meshkp.errors import LimitExceeded, MalformedPacket
from meshkp.openpgp.packet import Packet

LIMIT = 1024 * 1024


def test_each_generated_key_is_one_span() -> None:
    keys = [generate_key(i, with_subkey=i % 2 == 0).data for i in range(5)]
    ring = b"".join(keys)
    spans = key_spans(ring, LIMIT)
    assert [ring[a:b] for a, b in spans] == keys


def _legacy(tag: int, body: bytes) -> bytes:
    # Old-format header with a two-octet length (RFC 9580 §4.2.2), as GnuPG 1 and SKS wrote.
    return bytes([0x80 | (tag << 2) | 1]) + len(body).to_bytes(2, "big") + body


def test_legacy_headers_and_secret_keys_start_keys() -> None:
    ring = (
        _legacy(6, b"pk1") + _legacy(13, b"uid") + _legacy(2, b"sig")
        + _legacy(5, b"secret") + _legacy(13, b"uid2") + _legacy(6, b"pk2")
    )
    spans = key_spans(ring, LIMIT)
    assert len(spans) == 3
    assert spans[0][0] == 0 and spans[-1][1] == len(ring)
    assert all(a < b for a, b in spans)


def test_packets_before_the_first_key_are_their_own_span() -> None:
    stray = Packet(2, b"revocation").encode()
    key = generate_key(1).data
    assert key_spans(stray + key, LIMIT) == [(0, len(stray)), (len(stray), len(stray + key))]


def test_empty_input_has_no_spans() -> None:
    assert key_spans(b"", LIMIT) == []


def test_truncated_file_names_the_offset() -> None:
    ring = generate_key(0).data + generate_key(1).data
    with pytest.raises(MalformedPacket, match="truncated"):
        key_spans(ring[:-10], LIMIT)


def test_text_is_not_a_keyring() -> None:
    with pytest.raises(MalformedPacket, match="byte 0: 0x2d is not a packet header"):
        key_spans(b"-----BEGIN PGP", LIMIT)


@pytest.mark.parametrize("header", [b"\xc6\xe1", b"\x9b"])  # partial new length; legacy type 3
def test_partial_and_indeterminate_lengths_are_refused(header: bytes) -> None:
    with pytest.raises(MalformedPacket, match="length"):
        key_spans(header + b"x" * 10, LIMIT)


def test_packet_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        key_spans(Packet(13, b"u" * 300).encode(), 200)
    assert info.value.limit == "packet_bytes"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_either_split_exactly_or_raise(data: bytes) -> None:
    try:
        spans = key_spans(data, LIMIT)
    except (MalformedPacket, LimitExceeded):
        return
    assert b"".join(data[a:b] for a, b in spans) == data
