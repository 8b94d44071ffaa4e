"""ASCII armor: CRC24, several blocks per upload, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import ArmorError
from meshkp.openpgp.armor import armor, crc24, dearmor


def test_crc24_of_empty_input_is_the_init_value() -> None:
    assert crc24(b"") == 0xB704CE


def test_crc24_matches_a_known_vector() -> None:
    # Python's own computation of the RFC 9580 §6.1 reference code over "123456789".
    assert crc24(b"123456789") == 0x21CF02


def _crc24_bitwise(data: bytes) -> int:
    """The reference code of RFC 9580 §6.1, one bit at a time."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


@given(st.binary(max_size=200))
def test_crc24_by_slices_equals_the_bitwise_reference(data: bytes) -> None:
    # Every length modulo the 6-byte slice, so the tail loop is covered too.
    assert crc24(data) == _crc24_bitwise(data)


@given(st.binary(max_size=2000))
def test_armor_round_trips(data: bytes) -> None:
    assert dearmor(armor(data).encode()) == [data]


def test_several_blocks_and_surrounding_text_are_all_decoded() -> None:
    text = "intro\n" + armor(b"one") + "between\r\n" + armor(b"two", comment="x") + "outro"
    assert dearmor(text.encode()) == [b"one", b"two"]


def test_crc_mismatch_is_rejected() -> None:
    good = armor(b"some key bytes")
    lines = good.splitlines()
    crc_index = next(i for i, line in enumerate(lines) if line.startswith("="))
    lines[crc_index] = "=AAAA"
    with pytest.raises(ArmorError, match="CRC24"):
        dearmor("\n".join(lines).encode())


def test_missing_crc_is_accepted() -> None:
    lines = [line for line in armor(b"abc").splitlines() if not line.startswith("=")]
    assert dearmor("\n".join(lines).encode()) == [b"abc"]


def test_missing_end_line_is_rejected() -> None:
    text = armor(b"abc").replace("-----END PGP PUBLIC KEY BLOCK-----", "")
    with pytest.raises(ArmorError, match="no END line"):
        dearmor(text.encode())


def test_bad_base64_is_rejected() -> None:
    text = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"
    with pytest.raises(ArmorError, match="base64"):
        dearmor(text.encode())


def test_no_armor_at_all_is_rejected() -> None:
    with pytest.raises(ArmorError, match="BEGIN PGP"):
        dearmor(b"just text")


def test_binary_key_whose_user_id_mentions_an_armor_line_is_still_binary() -> None:
    from meshkp.openpgp.armor import is_armored
    from meshkp.openpgp.packet import Packet

    binary = Packet(6, b"\x04key").encode() + Packet(13, b"-----BEGIN PGP PUBLIC KEY BLOCK-----").encode()
    assert not is_armored(binary)
    assert is_armored(b"\n\n" + armor(b"x").encode())
    assert is_armored(b"Some text before\n" + armor(b"x").encode())
    assert is_armored(b"\xef\xbb\xbf" + armor(b"x").encode())
