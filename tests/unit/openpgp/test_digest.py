"""The SKS MD5 digest against the corpus test vectors, and the SHA-256 state hash."""

from __future__ import annotations

import random

import pytest

from meshkp.openpgp.digest import certificate_digest, sks_digest, state_hash
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Packet, Tag
from tests.unit.openpgp.keyfiles import all_packets, cert, raw_key

# Corpus README: digests of the keys as SKS saw them (every packet of the file, trust excluded).
RAW_VECTORS = {
    "sksdigest.asc": "da84f40d830a7be2a3c0b7f2e146bfaa",
    "sksdigest-noisy.asc": "da84f40d830a7be2a3c0b7f2e146bfaa",
    "gentoo-l1.asc": "0fa4cd2df7ede287ac0b7a608bf30faa",
    "0xd46b7c827be290fe4d1f9291b1ebc61a.asc": "0005127a8b7da8c32998d7e81dc92540",
    # Hockeypuck's TestDupSigSksDigest: the raw file, duplicate signature counted twice.
    "252B8B37.dupsig.asc": "6d57b48c83d6322076d634059bb3b94b",
}


@pytest.mark.parametrize(("name", "expected"), sorted(RAW_VECTORS.items()))
def test_sks_digest_of_raw_packets_matches_vectors(name: str, expected: str) -> None:
    assert sks_digest(all_packets(name)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sksdigest.asc", "da84f40d830a7be2a3c0b7f2e146bfaa"),
        # Trust packets are dropped by normalisation; the stored key has the clean digest.
        ("sksdigest-noisy.asc", "da84f40d830a7be2a3c0b7f2e146bfaa"),
        # Misplaced third-party certifications on the primary are kept (as SKS/Hockeypuck do),
        # so the stored key keeps the digest peers compute for it.
        ("gentoo-l1.asc", "0fa4cd2df7ede287ac0b7a608bf30faa"),
        # Deduplicated: the value Hockeypuck expects "once #283 is fixed".
        ("252B8B37.dupsig.asc", "ba693a2769fffc68afd3a22fd5b4bdd6"),
    ],
)
def test_digest_of_normalised_certificate(name: str, expected: str) -> None:
    assert certificate_digest(cert(name)) == expected


def test_v3_key_without_uid_signature_has_vector_digest_but_is_not_stored() -> None:
    # Hockeypuck computes 0005127a... over the raw packets, then evaporates the key in
    # ValidSelfSigned (no self-signature at all); meshkp does the same.
    from meshkp.errors import KeyRejected

    packets = raw_key("0xd46b7c827be290fe4d1f9291b1ebc61a.asc")
    assert [p.tag for p in packets] == [Tag.PUBLIC_KEY, Tag.USER_ID]
    assert sks_digest(packets) == "0005127a8b7da8c32998d7e81dc92540"
    with pytest.raises(KeyRejected, match="no valid self-signature"):
        normalise(packets)


def test_digest_ignores_order_header_format_and_trust_packets() -> None:
    packets = all_packets("sksdigest.asc")
    shuffled = packets[:]
    random.Random(7).shuffle(shuffled)
    # Re-encode with new-format headers: the digest covers tag, length and body only.
    reencoded = parse_packets(b"".join(p.encode() for p in shuffled))
    noisy = reencoded + [Packet(Tag.TRUST, b"\x00\x01")]
    assert sks_digest(noisy) == sks_digest(packets) == RAW_VECTORS["sksdigest.asc"]


def test_digest_changes_with_any_packet() -> None:
    packets = [p for p in all_packets("sksdigest.asc") if p.tag != Tag.TRUST]
    for index in range(len(packets)):
        assert sks_digest(packets[:index] + packets[index + 1 :]) != sks_digest(packets)


def test_state_hash_equal_for_equal_certificates_and_differs_otherwise() -> None:
    a, b = cert("alice_unsigned.asc"), cert("alice_signed.asc")
    assert state_hash(a) == state_hash(cert("alice_unsigned.asc"))
    assert state_hash(a.merge(b)) == state_hash(b)
    assert state_hash(a) != state_hash(b)
    assert len(state_hash(a)) == 32
