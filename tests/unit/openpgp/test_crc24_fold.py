"""The folded CRC24 equals the RFC 9580 §6.1 byte loop for every input, short and long."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.openpgp.crc24_fold import crc24_folded

_POLY = 0x1864CFB


def reference(data: bytes) -> int:
    """The bitwise reference code of RFC 9580 §6.1, as printed there."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _POLY
    return crc & 0xFFFFFF


@settings(max_examples=60)
@given(st.binary(max_size=5000))
def test_equals_the_reference_loop(data: bytes) -> None:
    assert crc24_folded(data) == reference(data)


def test_known_vectors_and_boundaries() -> None:
    assert crc24_folded(b"") == 0xB704CE
    assert crc24_folded(b"123456789") == 0x21CF02
    # Sizes where the dividend's bit count sits on a power of two, or one off it.
    for size in (5, 6, 7, 13, 125, 126, 127, 128, 1021, 1024, 1025, 16381, 16384, 70_000):
        data = bytes((i * 131 + size) & 0xFF for i in range(size))
        assert crc24_folded(data) == reference(data), size
