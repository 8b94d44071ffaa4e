"""Normalisation of real corpus keys: what is kept, dropped, deduplicated and rejected."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import ArmorError, KeyRejected, MalformedPacket, OpenPGPError
from meshkp.keys.terms import index_terms, revocation_lookup_terms
from meshkp.limits import Limits
from meshkp.openpgp.armor import armor
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view
from meshkp.openpgp.keytext import SECRET_KEY_REASON, PartialKey, Rejected, parse_keytext
from meshkp.openpgp.normalise import claims_self, normalise, normalise_update
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.revocation import RevocationCertificate, apply_revocation
from meshkp.openpgp.signature import SigType, parse_signature
from tests.unit.openpgp.keyfiles import FIXTURES, all_packets, cert, fixture, raw_key, raw_keys

CORPUS_KEYS = sorted(p.name for p in FIXTURES.glob("*.asc")) + ["snowcrash.gpg"]


def _sig_types(sigs: frozenset[Packet]) -> list[int]:
    return sorted(parse_signature(p.body).sig_type for p in sigs)


def _user_ids(c: Certificate) -> set[bytes]:
    return set(c.user_ids)


def _corrupt(packet: Packet) -> Packet:
    """The same signature with its last byte flipped: the left-16 check passes, the math fails."""
    return Packet(packet.tag, packet.body[:-1] + bytes([packet.body[-1] ^ 0x01]))


@pytest.mark.parametrize("name", CORPUS_KEYS)
def test_every_corpus_file_parses_without_crashing_and_is_idempotent(name: str) -> None:
    for item in parse_keytext(fixture(name)):
        if isinstance(item, Certificate):
            assert normalise(list(item.packets())) == item
            tags = {p.tag for p in item.packets()}
            assert tags <= {Tag.PUBLIC_KEY, Tag.SIGNATURE, Tag.USER_ID, Tag.USER_ATTRIBUTE,
                            Tag.PUBLIC_SUBKEY}
        else:
            assert isinstance(item, (Rejected, RevocationCertificate))
            if isinstance(item, Rejected):
                assert item.reason


def test_trust_packets_are_never_stored() -> None:
    noisy, clean = cert("sksdigest-noisy.asc"), cert("sksdigest.asc")
    assert noisy == clean
    assert Tag.TRUST in {p.tag for p in raw_key("sksdigest-noisy.asc")}
    keyring = cert("snowcrash.gpg")  # a binary keyring with GnuPG trust packets
    assert Tag.TRUST not in {p.tag for p in keyring.packets()}
    assert len(keyring.user_ids) == 1 and len(keyring.subkeys) == 1


def test_duplicated_signature_is_stored_once() -> None:
    packets = raw_key("252B8B37.dupsig.asc")
    c = normalise(packets)
    stored = list(c.packets())
    assert len(stored) == len(packets) - 1
    for component in c.components():
        assert len(component.ordered_signatures()) == len(set(component.signatures))


def test_every_packet_duplicated_normalises_to_the_same_certificate() -> None:
    # Hockeypuck's dedup test: every component packet twice, every signature three times.
    packets = raw_key("d7346e26.asc")
    noisy = [packets[0]]
    for packet in packets[1:]:
        copies = 3 if packet.tag == Tag.SIGNATURE else 2
        noisy += [packet] * copies
    assert normalise(noisy) == normalise(packets)
    assert len(list(normalise(noisy).packets())) == len(packets)


def test_contextual_duplicates_sks_fail() -> None:
    plain, dup = cert("sks_fail.asc"), cert("sks_fail_dup.asc")
    assert plain == dup
    # The primary in sks_fail_dup carries trailing junk; the stored body is gpg's canonical one.
    raw_primary = raw_key("sks_fail_dup.asc")[0]
    assert len(raw_primary.body) > len(dup.primary.packet.body)
    assert dup.fingerprint.hex().upper() == "CC6CC769B7E5562F0338DC37EF1990426FBA476B"
    # Two subkey packets that differ only in trailing junk are one subkey.
    assert len(dup.subkeys) == 1


def test_user_id_with_bad_self_signature_is_dropped() -> None:
    c = cert("badselfsig.asc")
    texts = {uid.decode() for uid in c.user_ids}
    assert texts == {
        "Casey Marshall <casey.marshall@gazzang.com>",
        "Casey Marshall <casey.marshall@gmail.com>",
    }
    assert not any("Karneef" in t for t in texts)
    assert len(c.user_attributes) == 1 and len(c.subkeys) == 3


def test_third_party_signature_on_subkey_is_dropped() -> None:
    raw = raw_key("martian.asc")
    c = normalise(raw)
    (subkey,) = c.subkeys.values()
    assert _sig_types(subkey.signatures) == [SigType.SUBKEY_BINDING]
    assert sum(1 for p in raw if p.tag == Tag.SIGNATURE) == 3


def test_key_without_valid_self_signature_is_rejected() -> None:
    with pytest.raises(KeyRejected, match="no valid self-signature") as caught:
        normalise(raw_key("snowcrash_evaporated.asc"))
    assert caught.value.fingerprint


def test_user_id_with_nul_byte_is_dropped_rest_kept() -> None:
    raw = raw_key("270f682dc391d7d9.asc")
    assert any(p.tag == Tag.USER_ID and b"\x00" in p.body for p in raw)
    c = normalise(raw)
    assert not c.user_ids
    assert len(c.subkeys) == 2


def test_unparsable_v5_subkey_is_dropped_rest_kept() -> None:
    c = cert("cv448-v5-subkey.asc")
    assert _user_ids(c) == {b"Testy McTestface <test@openpgp.example>"}
    assert not c.subkeys


def test_rsa_1023_bit_key_validates() -> None:
    c = cert("rsa1023.asc")
    assert parse_public_key(c.primary.packet.body).bits == 1023
    assert len(c.user_ids) == 1 and len(c.subkeys) == 1


def test_six_ecc_keys_keep_their_self_signatures() -> None:
    items = parse_keytext(fixture("ecc_keys.asc"))
    assert len(items) == len(raw_keys("ecc_keys.asc")) == 6
    for item in items:
        assert isinstance(item, Certificate)
        assert len(item.user_ids) == 1 and len(item.subkeys) == 1


def test_large_user_attribute_is_kept() -> None:
    c = cert("uat.asc")
    (uat,) = c.user_attributes
    assert len(uat) > 3000


def test_unparsable_signatures_are_dropped() -> None:
    assert cert("a7400f5a_badsigs.asc") == cert("a7400f5a_nobadsigs.asc")


def test_v3_signature_on_v4_subkey_is_kept() -> None:
    c = cert("0ff16c87.asc")  # Hockeypuck TestSelfSignedOnly_V3SigDropped
    assert len(c.user_ids) == 9 and len(c.subkeys) == 1


def test_forged_self_signature_is_dropped_and_unbound_user_id_with_it() -> None:
    raw = list(raw_key("alice_unsigned.asc"))
    uid_sig = raw.index(next(p for p in raw if p.tag == Tag.USER_ID)) + 1
    raw[uid_sig] = _corrupt(raw[uid_sig])
    c = normalise(raw)
    assert not c.user_ids and len(c.subkeys) == 1


def test_forged_signature_claiming_primary_is_dropped_but_real_one_kept() -> None:
    raw = list(raw_key("alice_unsigned.asc"))
    uid_at = raw.index(next(p for p in raw if p.tag == Tag.USER_ID))
    forged = _corrupt(raw[uid_at + 1])
    raw.insert(uid_at + 2, forged)
    c = normalise(raw)
    (uid,) = c.user_ids.values()
    assert forged not in uid.signatures and len(uid.signatures) == 1


@pytest.mark.parametrize("name", ["pqc-test-key-v6type30+35.asc", "slhdsa-test-key-multisig.asc"])
def test_unverifiable_post_quantum_primary_is_rejected_naming_the_algorithm(name: str) -> None:
    (item,) = parse_keytext(fixture(name))
    assert isinstance(item, Rejected)
    assert item.reason.startswith("no verifiable self-signature on this v6 key")
    assert "algorithm 3" in item.reason  # names the post-quantum algorithm (30 or 33)
    assert len(item.fingerprint) == 64  # v6 fingerprint: the key was parsed and identified


def test_v6_key_with_ed25519_primary_and_pq_subkey_is_stored() -> None:
    c = cert("pqc-test-key-v6type35.asc")
    assert parse_public_key(c.primary.packet.body).version == 6
    assert len(c.subkeys) == 1


def test_key_bytes_limit_rejects_naming_the_limit() -> None:
    packets = raw_key("e68e311d.asc")
    size = len(normalise(packets).to_bytes())
    with pytest.raises(KeyRejected, match="key_bytes") as caught:
        normalise(packets, Limits(key_bytes=size - 1))
    assert caught.value.fingerprint
    assert len(normalise(packets, Limits(key_bytes=size)).to_bytes()) == size


def test_uid_bytes_limit_drops_long_user_ids() -> None:
    c = normalise(raw_key("lp1195901.asc"), Limits(uid_bytes=len("Phil Pennock <pdp@exim.org>")))
    assert _user_ids(c) == {b"Phil Pennock <pdp@exim.org>"}


def test_oversized_packet_is_dropped_with_its_signatures() -> None:
    c = normalise(raw_key("uat.asc"), Limits(packet_bytes=3000))
    full = cert("uat.asc")
    assert not c.user_attributes
    assert c.user_ids == full.user_ids and c.subkeys == full.subkeys


def test_third_party_signatures_capped_to_smallest_hashes_self_signatures_exempt() -> None:
    import hashlib

    full = cert("lp1195901.asc")
    capped = normalise(raw_key("lp1195901.asc"), Limits(sigs_per_component=2))
    primary = parse_public_key(full.primary.packet.body)
    for body, component in full.user_ids.items():
        mine = {p for p in component.signatures if claims_self(parse_signature(p.body), primary)}
        theirs = sorted(component.signatures - mine, key=lambda p: hashlib.sha256(p.encode()).digest())
        assert capped.user_ids[body].signatures == frozenset(mine) | frozenset(theirs[:2])
    assert any(len(c.signatures) > 4 for c in full.user_ids.values())


def test_unknown_and_secret_subkey_packets_drop_their_signatures() -> None:
    raw = list(raw_key("alice_unsigned.asc"))
    sub_at = raw.index(next(p for p in raw if p.tag == Tag.PUBLIC_SUBKEY))
    uid_at = raw.index(next(p for p in raw if p.tag == Tag.USER_ID))
    uid_sig = raw[uid_at + 1]
    for odd in (Packet(60, b"unknown"), Packet(Tag.SECRET_SUBKEY, raw[sub_at].body + b"\x00")):
        # The odd packet, then a valid UID self-signature: it must not attach to anything.
        noisy = raw[:sub_at] + [odd, uid_sig] + raw[sub_at:]
        assert normalise(noisy) == normalise(raw)
    marker = raw[:1] + [Packet(Tag.MARKER, b"PGP"), Packet(Tag.PADDING, b"\x00" * 8)] + raw[1:]
    assert normalise(marker) == normalise(raw)


def test_key_must_start_with_public_key_packet() -> None:
    raw = raw_key("alice_unsigned.asc")
    with pytest.raises(KeyRejected, match="tag 6"):
        normalise(raw[1:])
    with pytest.raises(KeyRejected, match="no valid self-signature"):
        normalise(raw[:1])


def test_component_order_in_the_upload_does_not_matter() -> None:
    raw = list(raw_key("lp1195901.asc"))
    groups: list[list[Packet]] = []
    for packet in raw[1:]:
        if packet.tag != Tag.SIGNATURE or not groups:
            groups.append([packet])
        else:
            groups[-1].append(packet)
    random.Random(3).shuffle(groups)
    shuffled = raw[:1] + [p for group in groups for p in group]
    assert normalise(shuffled).to_bytes() == normalise(raw).to_bytes()


def test_alice_signed_is_superset_and_merge_is_union() -> None:
    unsigned, signed = cert("alice_unsigned.asc"), cert("alice_signed.asc")
    merged = unsigned.merge(signed)
    assert merged == signed
    (uid,) = merged.user_ids.values()
    issuers = {parse_signature(p.body).issuer_key_id.hex() for p in uid.signatures}
    assert "62aea01d67640fb5" in issuers


def test_merge_of_lp1195901_copies_keeps_all_user_ids() -> None:
    merged = cert("lp1195901_globnix.asc").merge(cert("lp1195901.asc"))
    assert b"Phil Pennock <pdp@spodhuis.org>" in merged.user_ids
    assert merged.user_ids.keys() == cert("lp1195901.asc").user_ids.keys()


def test_normalise_update_equals_normalising_the_union() -> None:
    stored = cert("lp1195901_globnix.asc")
    upload = raw_key("lp1195901.asc")
    assert normalise_update(stored, upload) == normalise(list(stored.packets()) + list(upload))


def test_normalise_update_keeps_third_party_signatures_of_an_unbound_upload() -> None:
    # An upload carrying alice's UID with only a third-party certification is not a key on
    # its own, but merged with the stored copy (which has the self-signature) it adds one.
    signed = raw_key("alice_signed.asc")
    uid_at = next(i for i, p in enumerate(signed) if p.tag == Tag.USER_ID)
    third_party = next(
        p for p in signed[uid_at + 1 :]
        if p.tag == Tag.SIGNATURE and parse_signature(p.body).sig_type == 0x10
    )
    upload = [signed[0], signed[uid_at], third_party]
    with pytest.raises(KeyRejected):
        normalise(upload)
    stored = cert("alice_unsigned.asc")
    assert normalise_update(stored, upload) == cert("alice_signed.asc")


def test_bare_revocation_certificate_is_returned_and_merges_into_its_key() -> None:
    (revocation,) = parse_keytext(fixture("test-key-revoke.asc"))
    assert isinstance(revocation, RevocationCertificate)
    stored = cert("test-key.asc")
    assert any(term[1] == stored.fingerprint for term in revocation_lookup_terms(revocation))
    revoked = apply_revocation(stored, revocation)
    assert revoked is not None
    assert revoked == stored.merge(cert("test-key-revoked.asc"))
    assert _sig_types(revoked.primary.signatures) == [SigType.KEY_REVOCATION]
    assert apply_revocation(revoked, revocation) == revoked  # idempotent


def test_revocation_by_key_id_only_merges_into_revok_orig() -> None:
    (revocation,) = parse_keytext(fixture("revok_cert.asc"))
    assert isinstance(revocation, RevocationCertificate)
    assert revocation.signature.issuer_fingerprint is None
    assert revocation.issuer == "0AAAE5A5B3ACD94D"
    revoked = apply_revocation(cert("revok_orig.asc"), revocation.packet)
    assert revoked is not None and len(revoked.primary.signatures) == 1


def test_revocation_of_another_key_or_a_forged_one_is_refused() -> None:
    (other,) = parse_keytext(fixture("test-rtbf-revoke.asc"))
    assert isinstance(other, RevocationCertificate)
    assert apply_revocation(cert("test-key.asc"), other) is None
    (own,) = parse_keytext(fixture("test-key-revoke.asc"))
    assert isinstance(own, RevocationCertificate)
    assert apply_revocation(cert("test-key.asc"), _corrupt(own.packet)) is None
    assert apply_revocation(cert("test-rtbf.asc"), other) is not None


def test_several_armored_blocks_keep_a_revocation_apart_from_the_key_before_it() -> None:
    upload = fixture("test-key.asc") + b"\n" + fixture("test-key-revoke.asc")
    items = parse_keytext(upload)
    assert [type(i) for i in items] == [Certificate, RevocationCertificate]


def test_binary_keyring_of_several_keys() -> None:
    binary = b"".join(cert(n).to_bytes() for n in ("alice_unsigned.asc", "test-key.asc"))
    items = parse_keytext(binary)
    assert items == [cert("alice_unsigned.asc"), cert("test-key.asc")]
    assert parse_keytext(armor(binary).encode()) == items


def test_secret_key_is_rejected_with_its_fingerprint() -> None:
    raw = raw_key("alice_unsigned.asc")
    secret = Packet(Tag.SECRET_KEY, raw[0].body + b"\x00\x00\x01\x01")  # s2k 0, a fake MPI
    upload = b"".join(p.encode() for p in (secret, *raw[1:])) + cert("test-key.asc").to_bytes()
    items = parse_keytext(upload)
    assert items[0] == Rejected(SECRET_KEY_REASON, cert("alice_unsigned.asc").fingerprint.hex().upper())
    assert items[1] == cert("test-key.asc")


def test_stray_packets_and_detached_signatures_are_reported() -> None:
    uid = Packet(Tag.USER_ID, b"orphan <o@example.org>")
    items = parse_keytext(uid.encode() + cert("test-key.asc").to_bytes())
    assert isinstance(items[0], Rejected) and "before the first public key" in items[0].reason
    (detached,) = parse_keytext(fixture("delete.asc.asc"))
    assert isinstance(detached, Rejected) and "0x20" in detached.reason


def test_unframeable_upload_raises() -> None:
    data = cert("test-key.asc").to_bytes()
    with pytest.raises(MalformedPacket):
        parse_keytext(data[:-5])
    with pytest.raises(ArmorError, match="armor header"):
        parse_keytext(b"hello, this is not a key")
    with pytest.raises(ArmorError):
        parse_keytext(fixture("test-key.asc").replace(b"-----END PGP PUBLIC KEY BLOCK-----", b""))


def test_self_signatures_never_count_against_the_cap() -> None:
    tight = replace(Limits(), sigs_per_component=1)
    c = normalise(raw_key("alice_signed.asc"), tight)
    (uid,) = c.user_ids.values()
    assert len(uid.signatures) == 2  # one self-signature (exempt) + one third-party


@st.composite
def mutated_keys(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["alice_signed.asc", "badselfsig.asc", "test-key-revoked.asc",
                                 "rfc9580-v6-sample.asc", "ecc_keys.asc", "uat.asc"]))
    data = bytearray(b"".join(p.encode() for p in all_packets(name)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(("flip", "cut", "insert", "delete")))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[max(position, 1) :]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[position : position + draw(st.integers(1, 32))]
        if not data:
            data = bytearray(b"\x99")
    return bytes(data)


@given(mutated_keys())
def test_mutated_keys_never_crash_the_parser(data: bytes) -> None:
    # Bad input ends as items (Certificate / Rejected / revocation) or a typed OpenPGP error.
    try:
        items = parse_keytext(data)
    except OpenPGPError:
        return
    for item in items:
        assert isinstance(item, (Certificate, Rejected, RevocationCertificate, PartialKey))
        if isinstance(item, PartialKey):
            assert isinstance(item.alone, (Certificate, Rejected))
        if isinstance(item, Certificate):
            assert normalise(list(item.packets())) == item
            key_view(item)
            index_terms(item)


def test_many_forged_self_signatures_reject_the_upload_early() -> None:
    raw = list(raw_key("alice_unsigned.asc"))
    uid_at = raw.index(next(p for p in raw if p.tag == Tag.USER_ID))
    real = raw[uid_at + 1]
    forged = [
        Packet(Tag.SIGNATURE, real.body[:-2] + i.to_bytes(2, "big")) for i in range(0, 40)
    ]
    noisy = raw[: uid_at + 2] + forged + raw[uid_at + 2 :]
    with pytest.raises(KeyRejected, match="bad_self_signatures"):
        normalise(noisy, Limits(bad_self_signatures=10))
    assert normalise(noisy) == normalise(raw)  # under the default limit they are just dropped
