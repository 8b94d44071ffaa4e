"""Self-signature verification against real certificates (corpus, debian-keyring, RFC 9580)
and against signatures made here for the hash/algorithm pairs no real corpus key uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshkp.errors import MalformedPacket, UnsupportedAlgorithm
from meshkp.openpgp import algorithms
from meshkp.openpgp.armor import dearmor, is_armored
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.hashing import HASH_ALGORITHMS, signature_digest
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import Signature, parse_signature
from meshkp.openpgp.verify import verify_back_signature, verify_binding

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")
V6_SAMPLE_FINGERPRINT = "cb186c4f0609a697e4d52dfa6c722b0c1f1e27c18a56708f6525ec27bad9acc9"


@dataclass
class Cert:
    """A certificate as it appears in the file: signatures grouped under the packet before them."""

    primary: PublicKey
    direct: list[Signature] = field(default_factory=list)
    components: list[tuple[Packet, list[Signature]]] = field(default_factory=list)

    def self_signed(self, sigs: list[Signature]) -> list[Signature]:
        return [s for s in sigs if s.issuer_matches(self.primary.key_id, self.primary.fingerprint)]

    def user_ids(self) -> list[tuple[Packet, list[Signature]]]:
        return [(p, s) for p, s in self.components if p.tag == Tag.USER_ID]

    def subkeys(self) -> list[tuple[Packet, list[Signature]]]:
        return [(p, s) for p, s in self.components if p.tag == Tag.PUBLIC_SUBKEY]


def read_certs(data: bytes) -> list[Cert]:
    certs: list[Cert] = []
    blocks = dearmor(data) if is_armored(data) else [data]
    for block in blocks:
        for packet in parse_packets(block):
            if packet.tag == Tag.PUBLIC_KEY:
                certs.append(Cert(parse_public_key(packet.body)))
            elif packet.tag in (Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY) and certs:
                certs[-1].components.append((packet, []))
            elif packet.tag == Tag.SIGNATURE and certs:
                try:
                    sig = parse_signature(packet.body)
                except MalformedPacket:
                    continue
                cert = certs[-1]
                (cert.components[-1][1] if cert.components else cert.direct).append(sig)
    return certs


def fixture(name: str) -> list[Cert]:
    return read_certs((FIXTURES / name).read_bytes())


def only(name: str) -> Cert:
    (cert,) = fixture(name)
    return cert


def assert_one_uid_and_subkey_verify(cert: Cert) -> None:
    """cert has one user ID with one self-signature and one subkey with one binding, all valid."""
    ((uid, uid_sigs),) = cert.user_ids()
    ((subkey, subkey_sigs),) = cert.subkeys()
    assert [verify_binding(cert.primary, s, uid) for s in cert.self_signed(uid_sigs)] == [True]
    assert [verify_binding(cert.primary, s, subkey) for s in subkey_sigs] == [True]


# --- real certificates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "curve",
    ["ed25519", "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256k1",
     "nistp256"],
)
def test_ecc_keys_have_valid_uid_and_subkey_self_signatures(curve: str) -> None:
    (cert,) = [c for c in fixture("ecc_keys.asc") if c.primary.curve == curve]
    assert_one_uid_and_subkey_verify(cert)


def test_rsa_1023_bit_key_still_validates() -> None:
    cert = only("rsa1023.asc")
    assert cert.primary.bits == 1023
    assert_one_uid_and_subkey_verify(cert)


def test_rfc9580_v6_sample_certificate_verifies() -> None:
    cert = only("rfc9580-v6-sample.asc")
    assert cert.primary.version == 6
    assert cert.primary.fingerprint.hex() == V6_SAMPLE_FINGERPRINT
    (direct,) = cert.direct
    assert direct.version == 6 and direct.sig_type == 0x1F
    assert verify_binding(cert.primary, direct, None)
    ((subkey, (binding,)),) = cert.subkeys()
    assert parse_public_key(subkey.body).algorithm == 25  # X25519
    assert verify_binding(cert.primary, binding, subkey)


def test_v6_salt_is_part_of_the_hash() -> None:
    cert = only("rfc9580-v6-sample.asc")
    (direct,) = cert.direct
    salted = _replace(direct, salt=bytes([direct.salt[0] ^ 1]) + direct.salt[1:])
    assert not verify_binding(cert.primary, salted, None)
    unsalted = _replace(direct, salt=direct.salt[:-1])
    assert not verify_binding(cert.primary, unsalted, None)


@pytest.mark.parametrize("name", ["pqc-test-key-v4type35.asc", "pqc-test-key-v6type35.asc"])
def test_ed25519_primary_binds_post_quantum_encryption_subkey(name: str) -> None:
    # The subkey's algorithm (ML-KEM, 35) is unknown here, but its binding is made by the
    # Ed25519 primary and hashes the subkey as opaque bytes: it verifies.
    cert = only(name)
    assert cert.primary.algorithm == 27
    checked = [verify_binding(cert.primary, s, None) for s in cert.direct]
    for packet, sigs in cert.components:
        checked += [verify_binding(cert.primary, s, packet) for s in sigs]
    assert checked and all(checked)


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in FIXTURES.glob("pqc-test-key-v6type3[0-4]*.asc"))
    + ["slhdsa-test-key-multisig.asc"],
)
def test_post_quantum_signatures_are_unsupported_with_a_reason(name: str) -> None:
    cert = only(name)
    algorithm = cert.primary.algorithm
    sigs: list[tuple[Packet | None, Signature]] = [(None, s) for s in cert.direct]
    sigs += [(packet, s) for packet, group in cert.components for s in group]
    assert sigs
    for target, sig in sigs:
        with pytest.raises(UnsupportedAlgorithm, match=f"algorithm {algorithm} .*post-quantum"):
            verify_binding(cert.primary, sig, target)


def test_badselfsig_karneef_user_ids_are_bound_by_no_self_signature() -> None:
    cert = only("badselfsig.asc")
    all_self_sigs = cert.self_signed(
        cert.direct + [s for _, group in cert.components for s in group]
    )
    for uid, sigs in cert.user_ids():
        bound = [s for s in all_self_sigs if verify_binding(cert.primary, s, uid)]
        if b"karneef" in uid.body.lower():
            assert bound == [], uid.body
        else:
            assert bound and bound == cert.self_signed(sigs), uid.body


def test_v3_revocation_and_misfiled_bindings_of_rtt140() -> None:
    # A 1999 key: a v3 key-revocation signature (RFC 4880 §5.2.2 framing) on the primary,
    # and subkey bindings that an old keyserver filed under the wrong subkey. gpg reports
    # every one of them good after reordering; each verifies on the subkey it was made for.
    cert = only("rtt-140.asc")
    (revocation,) = cert.direct
    assert revocation.version == 3 and revocation.sig_type == 0x20
    assert verify_binding(cert.primary, revocation, None)
    subkeys = [packet for packet, _ in cert.subkeys()]
    bindings = [s for _, sigs in cert.subkeys() for s in sigs if s.sig_type == 0x18]
    assert len(bindings) == 8
    for binding in bindings:
        assert any(verify_binding(cert.primary, binding, subkey) for subkey in subkeys)
    filed_where_found = [verify_binding(cert.primary, s, p) for p, sigs in cert.subkeys()
                         for s in sigs if s.sig_type == 0x18]
    assert filed_where_found.count(False) == 2


def test_signature_moved_to_another_user_id_fails() -> None:
    cert = only("badselfsig.asc")
    (first, first_sigs), (second, _) = cert.user_ids()[:2]
    sig = cert.self_signed(first_sigs)[0]
    assert verify_binding(cert.primary, sig, first)
    assert not verify_binding(cert.primary, sig, second)


@pytest.mark.parametrize("position", [0, 7, -1])
def test_flipping_a_user_id_byte_breaks_its_self_signature(position: int) -> None:
    cert = only("rsa1023.asc")
    ((uid, sigs),) = cert.user_ids()
    (sig,) = cert.self_signed(sigs)
    body = bytearray(uid.body)
    body[position] ^= 0x20
    assert verify_binding(cert.primary, sig, uid)
    assert not verify_binding(cert.primary, sig, Packet(Tag.USER_ID, bytes(body)))


@pytest.mark.parametrize("name", ["rsa1023.asc", "ecc_keys.asc", "rfc9580-v6-sample.asc"])
def test_tampered_signature_material_fails_after_passing_left16(name: str) -> None:
    for cert in fixture(name):
        for target, sig in _self_sigs(cert):
            material = bytearray(sig.material)
            material[-1] ^= 0x01
            assert verify_binding(cert.primary, sig, target)
            assert not verify_binding(cert.primary, _replace(sig, material=bytes(material)),
                                      target)


def test_left16_mismatch_fails_before_the_math() -> None:
    cert = only("rsa1023.asc")
    ((uid, sigs),) = cert.user_ids()
    (sig,) = cert.self_signed(sigs)
    wrong = bytes([sig.left16[0] ^ 0xFF, sig.left16[1]])
    assert not verify_binding(cert.primary, _replace(sig, left16=wrong), uid)


def test_hashed_area_is_covered() -> None:
    cert = only("rsa1023.asc")
    ((uid, sigs),) = cert.user_ids()
    (sig,) = cert.self_signed(sigs)
    prefix = bytearray(sig.hashed_prefix)
    prefix[-1] ^= 0x01
    assert not verify_binding(cert.primary, _replace(sig, hashed_prefix=bytes(prefix)), uid)


def test_signature_type_must_fit_its_target() -> None:
    cert = only("rsa1023.asc")
    ((uid, uid_sigs),) = cert.user_ids()
    ((subkey, (binding,)),) = cert.subkeys()
    (certification,) = cert.self_signed(uid_sigs)
    assert not verify_binding(cert.primary, certification, None)
    assert not verify_binding(cert.primary, certification, subkey)
    assert not verify_binding(cert.primary, binding, None)
    assert not verify_binding(cert.primary, binding, uid)
    assert not verify_binding(cert.primary, binding, Packet(Tag.SIGNATURE, subkey.body))


def test_back_signature_of_signing_subkey() -> None:
    cert = only("a7400f5a_nobadsigs.asc")
    found = 0
    for subkey_packet, sigs in cert.subkeys():
        subkey = parse_public_key(subkey_packet.body)
        for binding in sigs:
            for back in binding.embedded_signatures():
                found += 1
                assert back.sig_type == 0x19
                assert verify_binding(cert.primary, binding, subkey_packet)
                assert verify_back_signature(cert.primary, subkey, back)
                assert verify_binding(cert.primary, back, subkey_packet, signer=subkey)
                # Made by the subkey, so the primary cannot have made it.
                assert not verify_binding(cert.primary, back, subkey_packet)
                other = parse_public_key(cert.subkeys()[0][0].body)
                if other.fingerprint != subkey.fingerprint:
                    assert not verify_back_signature(cert.primary, other, back)
    assert found == 1


def test_v4_signature_by_v6_key_is_invalid() -> None:
    cert = only("rfc9580-v6-sample.asc")
    (direct,) = cert.direct
    assert not verify_binding(cert.primary, _replace(direct, version=4), None)


def test_unknown_hash_and_elgamal_signatures_are_unsupported() -> None:
    cert = only("rsa1023.asc")
    ((uid, sigs),) = cert.user_ids()
    (sig,) = cert.self_signed(sigs)
    with pytest.raises(UnsupportedAlgorithm, match="hash algorithm 99"):
        verify_binding(cert.primary, _replace(sig, hash_algorithm=99), uid)
    with pytest.raises(UnsupportedAlgorithm, match="ElGamal"):
        verify_binding(cert.primary, _replace(sig, pubkey_algorithm=20), uid)
    # A signature that claims an algorithm its key does not have is simply invalid.
    assert not verify_binding(cert.primary, _replace(sig, pubkey_algorithm=17), uid)


def test_textbook_fallbacks_agree_with_the_library_on_real_keys() -> None:
    dsa_cert = only("lp1195901.asc")
    assert dsa_cert.primary.algorithm == 17
    checked = 0
    for cert in (only("rsa1023.asc"), dsa_cert):
        for target, sig in _self_sigs(cert):
            if not verify_binding(cert.primary, sig, target):
                continue  # lp1195901 carries signatures filed under the wrong user ID
            digest = _digest(cert.primary, sig, target)
            reader_values = _mpi_values(sig.material)
            if cert.primary.algorithm == 1:
                n, e = cert.primary.material
                info = HASH_ALGORITHMS[sig.hash_algorithm].digest_info
                assert algorithms.rsa_textbook_verify(n, e, sig.material[2:], info + digest)
                assert not algorithms.rsa_textbook_verify(n, e, sig.material[2:],
                                                          info + _flip(digest))
            else:
                r, s = reader_values
                p, q, g, y = cert.primary.material
                assert algorithms.dsa_textbook_verify(p, q, g, y, r, s, digest)
                assert not algorithms.dsa_textbook_verify(p, q, g, y, r, s, _flip(digest))
            checked += 1
    assert checked >= 2


def test_textbook_fallbacks_refuse_oversized_keys() -> None:
    huge_e = (1 << 65) + 1
    with pytest.raises(UnsupportedAlgorithm, match="exponent"):
        algorithms.rsa_textbook_verify(b"\xff" * 256, _be(huge_e), b"\x01", b"\x00" * 35)
    with pytest.raises(UnsupportedAlgorithm, match="DSA"):
        algorithms.dsa_textbook_verify(b"\xff" * 128, b"\xff" * 65, b"\x02", b"\x03", 1, 1,
                                       b"\x00" * 20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_signatures_never_crash(data: st.DataObject) -> None:
    certs = fixture("ecc_keys.asc") + fixture("rsa1023.asc") + fixture("rfc9580-v6-sample.asc")
    cert = data.draw(st.sampled_from(certs))
    target, sig = data.draw(st.sampled_from(_self_sigs(cert)))
    body = bytearray(_body_of(sig))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(body) // 2, len(body)))
    try:
        mutated = parse_signature(bytes(body[:cut]))
    except MalformedPacket:
        return
    try:
        result = verify_binding(cert.primary, mutated, target)
    except UnsupportedAlgorithm:
        return
    assert isinstance(result, bool)


# --- signatures made here: every hash with RSA, DSA, ECDSA; Ed448 v6 -----------------------

CREATED = (1_700_000_000).to_bytes(4, "big")
UID = Packet(Tag.USER_ID, b"Test <test@example.org>")


@pytest.mark.parametrize("hash_id", sorted(HASH_ALGORITHMS))
def test_rsa_with_every_hash(rsa_key: rsa.RSAPrivateKey, hash_id: int) -> None:
    numbers = rsa_key.private_numbers()
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    body = b"\x04" + CREATED + b"\x01" + _mpi(n) + _mpi(e)
    info = HASH_ALGORITHMS[hash_id].digest_info

    def sign(digest: bytes) -> bytes:
        t = info + digest
        k = (n.bit_length() + 7) // 8
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return _mpi(pow(int.from_bytes(em, "big"), numbers.d, n))

    key, sig = _make_v4(body, 1, hash_id, sign)
    assert verify_binding(key, sig, UID)
    assert not verify_binding(key, sig, Packet(Tag.USER_ID, b"Other <o@example.org>"))


@pytest.mark.parametrize("hash_id", [1, 2, 3, 8, 11, 10, 12])
def test_dsa_with_hashes_longer_and_shorter_than_q(dsa_key: dsa.DSAPrivateKey,
                                                   hash_id: int) -> None:
    numbers = dsa_key.private_numbers().public_numbers
    params = numbers.parameter_numbers
    body = (b"\x04" + CREATED + b"\x11" + _mpi(params.p) + _mpi(params.q) + _mpi(params.g)
            + _mpi(numbers.y))
    size_class = algorithms._BY_DIGEST_SIZE

    def sign(digest: bytes) -> bytes:
        r, s = decode_dss_signature(dsa_key.sign(digest, Prehashed(size_class[len(digest)]())))
        return _mpi(r) + _mpi(s)

    key, sig = _make_v4(body, 17, hash_id, sign)
    assert verify_binding(key, sig, UID)
    # The textbook path (used for non-FIPS sizes) truncates the digest the same way.
    digest = _digest(key, sig, UID)
    r, s = _mpi_values(sig.material)
    p, q, g, y = key.material
    assert algorithms.dsa_textbook_verify(p, q, g, y, r, s, digest)


@pytest.mark.parametrize("hash_id", [2, 3, 8, 9, 10, 14])
def test_ecdsa_nistp256_with_several_hashes(hash_id: int) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    oid = bytes.fromhex("2a8648ce3d030107")
    body = b"\x04" + CREATED + b"\x13" + bytes([len(oid)]) + oid + _mpi(_int(point))
    size_class = algorithms._BY_DIGEST_SIZE

    def sign(digest: bytes) -> bytes:
        der = private.sign(digest, ec.ECDSA(Prehashed(size_class[len(digest)]())))
        r, s = decode_dss_signature(der)
        return _mpi(r) + _mpi(s)

    key, sig = _make_v4(body, 19, hash_id, sign)
    assert verify_binding(key, sig, UID)


def test_ed448_v6_signature() -> None:
    private = ed448.Ed448PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = b"\x06" + CREATED + b"\x1c" + len(public).to_bytes(4, "big") + public
    key = parse_public_key(body)
    salt = bytes(range(32))
    hashed = b"\x05\x02" + CREATED
    prefix = b"\x06\x13\x1c\x0a" + len(hashed).to_bytes(4, "big") + hashed
    data = (salt + b"\x9b" + len(body).to_bytes(4, "big") + body
            + b"\xb4" + len(UID.body).to_bytes(4, "big") + UID.body
            + prefix + b"\x06\xff" + len(prefix).to_bytes(4, "big"))
    digest = hashlib.sha512(data).digest()
    packet = (prefix + b"\x00\x00\x00\x00" + digest[:2] + bytes([len(salt)]) + salt
              + private.sign(digest))
    sig = parse_signature(packet)
    assert verify_binding(key, sig, UID)
    assert not verify_binding(key, _replace(sig, material=sig.material[:-1]), UID)


# --- debian-keyring: every self-signature of 905 real keys --------------------------------


@pytest.mark.skipif(not DEBIAN_KEYRING.exists(), reason="apt-get install debian-keyring")
def test_every_debian_keyring_self_signature_verifies() -> None:
    certs = read_certs(DEBIAN_KEYRING.read_bytes())
    assert len(certs) == 905
    failures, without_uid, checked = [], [], 0
    for cert in certs:
        valid_uid = False
        for target, sig in _self_sigs(cert):
            checked += 1
            ok = verify_binding(cert.primary, sig, target)
            if not ok:
                failures.append((cert.primary.fingerprint.hex(), hex(sig.sig_type)))
            elif target is not None and target.tag == Tag.USER_ID and sig.sig_type <= 0x13:
                valid_uid = True
        if not valid_uid:
            without_uid.append(cert.primary.fingerprint.hex())
    assert checked > 6000
    assert failures == []
    assert without_uid == []


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 1024)


@pytest.fixture(scope="module")
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(1024)  # q of 160 bits: SHA-256 and up get truncated


def _self_sigs(cert: Cert) -> list[tuple[Packet | None, Signature]]:
    found: list[tuple[Packet | None, Signature]] = [(None, s) for s in
                                                     cert.self_signed(cert.direct)]
    for packet, sigs in cert.components:
        found += [(packet, s) for s in cert.self_signed(sigs)]
    return found


def _make_v4(
    key_body: bytes, algorithm: int, hash_id: int, sign: Callable[[bytes], bytes]
) -> tuple[PublicKey, Signature]:
    """A v4 positive certification of UID, hashed as RFC 9580 §5.2.4 says (written out here
    independently of meshkp.openpgp.hashing)."""
    hashed = b"\x05\x02" + CREATED
    prefix = bytes([4, 0x13, algorithm, hash_id]) + len(hashed).to_bytes(2, "big") + hashed
    data = (b"\x99" + len(key_body).to_bytes(2, "big") + key_body
            + b"\xb4" + len(UID.body).to_bytes(4, "big") + UID.body
            + prefix + b"\x04\xff" + len(prefix).to_bytes(4, "big"))
    digest = hashlib.new(HASH_ALGORITHMS[hash_id].name, data).digest()
    body = prefix + b"\x00\x00" + digest[:2] + sign(digest)
    return parse_public_key(key_body), parse_signature(body)


def _digest(key: PublicKey, sig: Signature, target: Packet | None) -> bytes:
    framed = None if target is None else (target.tag, target.body)
    return signature_digest(HASH_ALGORITHMS[sig.hash_algorithm], sig, key.body, framed)


def _body_of(sig: Signature) -> bytes:
    """Re-serialise a parsed v4/v6 signature (only what the parser reads back)."""
    if sig.version == 6:
        return (sig.hashed_prefix + b"\x00\x00\x00\x00" + sig.left16 + bytes([len(sig.salt)])
                + sig.salt + sig.material)
    return sig.hashed_prefix + b"\x00\x00" + sig.left16 + sig.material


def _replace(sig: Signature, **changes: Any) -> Signature:
    return replace(sig, **changes)


def _mpi(value: int) -> bytes:
    return value.bit_length().to_bytes(2, "big") + _be(value)


def _be(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _mpi_values(material: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(material):
        bits = int.from_bytes(material[pos:pos + 2], "big")
        size = (bits + 7) // 8
        values.append(_int(material[pos + 2:pos + 2 + size]))
        pos += 2 + size
    return values


def _flip(digest: bytes) -> bytes:
    return bytes([digest[0] ^ 0x80]) + digest[1:]


# --- Ed25519 through libsodium: the same answers as `cryptography`, never a laxer one ------

# The order of the Ed25519 base point (RFC 8032 §5.1): S must be below it.
_ED25519_L = 2**252 + 27742317777372353535851937790883648493


@given(st.binary(min_size=32, max_size=64), st.integers(min_value=0, max_value=63))
@settings(max_examples=40, deadline=None)
def test_ed25519_agrees_with_cryptography(digest: bytes, flip: int) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = private.sign(digest)
    assert algorithms._verify_ed25519(raw, signature, digest)
    tampered = bytearray(signature)
    tampered[flip] ^= 0x01
    with pytest.raises(InvalidSignature):
        public.verify(bytes(tampered), digest)
    assert not algorithms._verify_ed25519(raw, bytes(tampered), digest)
    assert not algorithms._verify_ed25519(raw, signature, digest + b"\0")


def test_ed25519_refuses_a_non_canonical_s_and_bad_sizes() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    digest = hashlib.sha256(b"upload").digest()
    signature = private.sign(digest)
    # S + L verifies the same equation but is not the canonical encoding (RFC 8032 §5.1.7).
    s = int.from_bytes(signature[32:], "little") + _ED25519_L
    assert s < 2**256
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert algorithms._verify_ed25519(raw, signature, digest)
    assert not algorithms._verify_ed25519(raw, malleated, digest)
    assert not algorithms._verify_ed25519(raw[:31], signature, digest)
    assert not algorithms._verify_ed25519(raw, signature[:63], digest)
