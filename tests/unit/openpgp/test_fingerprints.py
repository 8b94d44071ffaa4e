"""Fingerprints and key IDs of v3, v4 and v6 keys, checked against real GnuPG."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.errors import MalformedPacket
from meshkp.openpgp.armor import dearmor, is_armored
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key
from tests.gpgtools import GPG, gnupg_home, show_keys_colons

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# Files gpg 2.2 can list (it predates v6 keys, and v3 keys are listed without fingerprints).
GPG_COMPARABLE = sorted(
    p for p in FIXTURES.glob("*.asc")
    if not p.name.startswith(("pqc-", "slhdsa-", "rfc9580-", "0xd46b7c827"))
)


def _key_packets(path: Path):
    data = path.read_bytes()
    blocks = dearmor(data) if is_armored(data) else [data]
    for block in blocks:
        for packet in parse_packets(block):
            if packet.tag in (Tag.PUBLIC_KEY, Tag.PUBLIC_SUBKEY):
                try:
                    yield parse_public_key(packet.body)
                except MalformedPacket:
                    continue


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
def test_v4_fingerprints_and_key_ids_match_gnupg() -> None:
    compared = 0
    with gnupg_home() as home:
        for path in GPG_COMPARABLE:
            records = show_keys_colons(home, path)
            gpg_fprs = {r[9].lower() for r in records if r[0] == "fpr"}
            gpg_primaries = {
                records[i + 1][9].lower()
                for i, r in enumerate(records[:-1])
                if r[0] == "pub" and records[i + 1][0] == "fpr"
            }
            keys = [k for k in _key_packets(path) if k.version == 4]
            if not gpg_fprs:
                continue
            # gpg hides subkeys it finds unusable (e.g. no binding signature), so ours may be more.
            assert gpg_fprs <= {k.fingerprint.hex() for k in keys}, path.name
            assert gpg_primaries <= {k.fingerprint.hex() for k in keys}, path.name
            for key in keys:
                assert key.key_id.hex() == key.fingerprint.hex()[-16:]
            compared += len(gpg_fprs)
    assert compared > 100


def test_v6_fingerprint_of_the_rfc_9580_sample_certificate() -> None:
    keys = list(_key_packets(FIXTURES / "rfc9580-v6-sample.asc"))
    assert keys[0].fingerprint.hex().upper() == (
        "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9"
    )
    assert keys[0].key_id == keys[0].fingerprint[:8]
    assert keys[1].fingerprint.hex().upper() == (
        "12C83F1E706F6308FE151A417743A1F033790E93E9978488D1DB378DA9930885"
    )


def test_v3_key_id_is_the_low_64_bits_of_the_modulus() -> None:
    (key,) = list(_key_packets(FIXTURES / "0xd46b7c827be290fe4d1f9291b1ebc61a.asc"))
    assert key.version == 3
    assert key.fingerprint.hex() == "d46b7c827be290fe4d1f9291b1ebc61a"
    assert key.key_id == key.material[0][-8:]


def test_v4_key_id_and_short_id_are_fingerprint_suffixes() -> None:
    key = next(_key_packets(FIXTURES / "sksdigest.asc"))
    assert key.fingerprint.hex() == "646ad4c90a2d13f62d9d1bf4cc5112bdce353cf4"
    assert key.key_id.hex() == "cc5112bdce353cf4"
    assert key.short_id.hex() == "ce353cf4"


def test_trailing_junk_after_key_material_is_cut_as_gnupg_does() -> None:
    key = next(_key_packets(FIXTURES / "sks_fail.asc"))
    assert key.fingerprint.hex() == "cc6cc769b7e5562f0338dc37ef1990426fba476b"


def test_v5_key_packets_are_refused() -> None:
    with pytest.raises(MalformedPacket, match="v5"):
        parse_public_key(bytes([5]) + b"\0" * 20)


def test_parsed_keys_are_remembered_by_body_and_errors_are_not() -> None:
    """parse_public_key keeps parsed keys (an upload parses each 3-4 times); what it returns
    for a remembered body or a truncated one is what a fresh parse gives."""
    from meshkp.openpgp import pubkey

    body = next(_key_packets(FIXTURES / "ecc_keys.asc")).body
    first = parse_public_key(body)
    assert parse_public_key(bytes(bytearray(body))) is first  # an equal body: parsed once
    assert first == pubkey._parse(body)
    for _ in range(2):
        with pytest.raises(MalformedPacket):
            parse_public_key(body[:-3])
    # A body over the size kept is parsed each time (trailing octets: a v4 key still parses).
    big = body + b"\0" * pubkey.PARSED_KEY_CACHED_BYTES
    assert parse_public_key(big) == parse_public_key(big) == first
    assert parse_public_key(big) is not parse_public_key(big)
