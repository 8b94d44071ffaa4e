"""Public-key signature math over a finished digest: RSA, DSA, ECDSA, EdDSA (RFC 9580 §5.2.3).

Ed25519 is checked by libsodium (through PyNaCl, which the node needs for its cluster key
anyway): 38 µs a signature here against 61 µs through `cryptography`, and two of them are most
of a small upload's CPU (docs/benchmarks.md, issue 14). libsodium is the stricter of the two: it
also refuses small-order points and non-canonical encodings, which no honest signer makes.
`cryptography` does the rest of the work where it accepts the key. Real certificates include keys
it refuses (DSA with non-FIPS sizes of p and q); for those, RSA and DSA fall back to
textbook verification with pow(), which is exact, just slower. Converted key objects are
cached by key material because one primary key signs all of its own components.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as LibraryUnsupported
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from meshkp.errors import MalformedPacket, UnsupportedAlgorithm
from meshkp.openpgp.hashing import HashAlgorithm
from meshkp.openpgp.mpi import Reader
from meshkp.openpgp.pubkey import PublicKey, PublicKeyAlgorithm

# How many converted public keys to keep. A bulk load sees each primary key for one
# certificate, so a few thousand covers any batch while bounding memory (~1 KB each).
KEY_CACHE_SIZE = 4096

# Bounds on the pure-Python fallbacks, whose cost grows with exponent bits times modulus
# bits squared: without them one hostile key with a 64 KB "modulus" and exponent would
# pin a core for hours. They admit every real key seen (RSA e = 65537 or small odd
# values; DSA q of 160-256 bits) at a worst case of ~50 ms per signature on this
# project's reference machine (measured: RSA 16384/64 bits 45 ms, DSA 8192/256 ~60 ms).
TEXTBOOK_MAX_MODULUS_BITS = 16384  # the largest RSA modulus GnuPG and OpenSSL accept
TEXTBOOK_MAX_RSA_EXPONENT_BITS = 64  # OpenSSL's own bound for moduli over 3072 bits
TEXTBOOK_MAX_DSA_P_BITS = 8192  # twice FIPS 186's largest; old PGP keys stay far below
TEXTBOOK_MAX_DSA_Q_BITS = 256  # FIPS 186's largest q; DSA's security never needed more

_ECDSA_CURVES: dict[str, ec.EllipticCurve] = {
    "nistp256": ec.SECP256R1(),
    "nistp384": ec.SECP384R1(),
    "nistp521": ec.SECP521R1(),
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
    "brainpoolP512r1": ec.BrainpoolP512R1(),
    "secp256k1": ec.SECP256K1(),
}

# DSA and ECDSA sign the bare digest; `cryptography` only wants a hash of the same size to
# accept it (Prehashed). This lets RIPEMD-160, which it lacks, use SHA-1's 20-octet slot.
_BY_DIGEST_SIZE: dict[int, type[hashes.HashAlgorithm]] = {
    16: hashes.MD5, 20: hashes.SHA1, 28: hashes.SHA224,
    32: hashes.SHA256, 48: hashes.SHA384, 64: hashes.SHA512,
}

_RSA = frozenset({PublicKeyAlgorithm.RSA, PublicKeyAlgorithm.RSA_SIGN})
_RSA_KEYS = frozenset({PublicKeyAlgorithm.RSA, PublicKeyAlgorithm.RSA_ENCRYPT,
                       PublicKeyAlgorithm.RSA_SIGN})
_UNSIGNABLE: dict[int, str] = {
    PublicKeyAlgorithm.RSA_ENCRYPT: "RSA encrypt-only (2) is not a signing algorithm",
    PublicKeyAlgorithm.ELGAMAL: "ElGamal (16) is an encryption algorithm",
    PublicKeyAlgorithm.ECDH: "ECDH (18) is an encryption algorithm",
    PublicKeyAlgorithm.X25519: "X25519 (25) is an encryption algorithm",
    PublicKeyAlgorithm.X448: "X448 (26) is an encryption algorithm",
    PublicKeyAlgorithm.ELGAMAL_SIGN: (
        "ElGamal signatures (20) are deprecated (RFC 9580 §9.1) and not verified by meshkp"
    ),
}


def check_supported(sig_algorithm: int, signer: PublicKey) -> None:
    """Raise UnsupportedAlgorithm if a signature by `signer` with this algorithm can't be checked."""
    reason = _UNSIGNABLE.get(sig_algorithm)
    if reason is not None:
        raise UnsupportedAlgorithm(f"signature public-key algorithm: {reason}")
    if sig_algorithm in _RSA or sig_algorithm in (
        PublicKeyAlgorithm.DSA, PublicKeyAlgorithm.ED25519, PublicKeyAlgorithm.ED448,
    ):
        return
    if sig_algorithm == PublicKeyAlgorithm.ECDSA:
        if signer.algorithm == PublicKeyAlgorithm.ECDSA and signer.curve not in _ECDSA_CURVES:
            raise UnsupportedAlgorithm(
                f"ECDSA on curve {signer.curve} is not supported "
                f"(supported: {', '.join(_ECDSA_CURVES)})"
            )
        return
    if sig_algorithm == PublicKeyAlgorithm.EDDSA_LEGACY:
        if signer.algorithm == PublicKeyAlgorithm.EDDSA_LEGACY and signer.curve != "ed25519":
            raise UnsupportedAlgorithm(
                f"EdDSA (legacy, 22) on curve {signer.curve} is not supported; only Ed25519 "
                "(RFC 9580 §5.5.5.5)"
            )
        return
    name = _algorithm_name(sig_algorithm)
    raise UnsupportedAlgorithm(
        f"signature public-key algorithm {sig_algorithm} ({name}) cannot be verified by meshkp "
        "(supported: RSA, DSA, ECDSA, EdDSA legacy, Ed25519, Ed448)"
    )


def key_matches(sig_algorithm: int, signer: PublicKey) -> bool:
    """True if a signature claiming `sig_algorithm` could have been made by `signer`."""
    if sig_algorithm in _RSA:
        return signer.algorithm in _RSA_KEYS
    return sig_algorithm == signer.algorithm


def verify_digest(signer: PublicKey, sig_algorithm: int, material: bytes,
                  algorithm: HashAlgorithm, digest: bytes) -> bool:
    """True if `material` is a valid signature by `signer` over `digest`; False on any defect."""
    try:
        if sig_algorithm in _RSA:
            return _verify_rsa(signer, material, algorithm, digest)
        if sig_algorithm == PublicKeyAlgorithm.DSA:
            return _verify_dsa(signer, material, digest)
        if sig_algorithm == PublicKeyAlgorithm.ECDSA:
            return _verify_ecdsa(signer, material, digest)
        if sig_algorithm == PublicKeyAlgorithm.EDDSA_LEGACY:
            return _verify_eddsa_legacy(signer, material, digest)
        if sig_algorithm == PublicKeyAlgorithm.ED25519:
            return _verify_ed25519(signer.material[0], material, digest)
        if sig_algorithm == PublicKeyAlgorithm.ED448:
            return _verify_native(_ed448_key(signer.material[0]), material, 114, digest)
    except (MalformedPacket, ValueError, TypeError, IndexError, OverflowError,
            LibraryUnsupported):
        # Malformed material (bad MPIs, a point off the curve, wrong sizes) cannot be a valid
        # signature; none of these may escape to the caller as a crash.
        return False
    return False


# --- RSA (RFC 9580 §5.2.3.1: PKCS#1 v1.5 with the hash's DigestInfo) ---------------------


def _verify_rsa(signer: PublicKey, material: bytes, algorithm: HashAlgorithm,
                digest: bytes) -> bool:
    (signature,) = _mpis(material, 1)
    n, e = signer.material[0], signer.material[1]
    exponent_bits = _int(e).bit_length()
    if exponent_bits > TEXTBOOK_MAX_RSA_EXPONENT_BITS:
        # Refused before any exponentiation, whichever library would do it: OpenSSL accepts
        # an exponent as large as the modulus up to 3072 bits, and a ~3070-bit one made each
        # failing self-signature cost ~7 ms, 0.47 s per hostile key (red-team finding 5).
        # Real keys use 65537 (17 bits) or smaller.
        raise UnsupportedAlgorithm(
            f"RSA key with a {exponent_bits}-bit public exponent: meshkp verifies exponents "
            f"of at most {TEXTBOOK_MAX_RSA_EXPONENT_BITS} bits (real keys use 65537)")
    # Sizes from the values, not the MPI lengths: an MPI with a too-large bit count carries
    # leading zero octets that change nothing (libgcrypt reads such MPIs as numbers too).
    size = (_int(n).bit_length() + 7) // 8
    signature = signature.lstrip(b"\0")
    if len(signature) > size:
        return False
    key = _rsa_key(n, e)
    if key is not None and algorithm.library is not None:
        try:
            # OpenSSL wants the signature exactly as long as the modulus; the MPI has no
            # leading zero octets.
            key.verify(signature.rjust(size, b"\0"), digest, padding.PKCS1v15(),
                       Prehashed(algorithm.library()))
            return True
        except InvalidSignature:
            return False
    return rsa_textbook_verify(n, e, signature, algorithm.digest_info + digest)


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _rsa_key(n: bytes, e: bytes) -> rsa.RSAPublicKey | None:
    try:
        return rsa.RSAPublicNumbers(_int(e), _int(n)).public_key()
    except (ValueError, LibraryUnsupported):
        return None  # e.g. an even exponent: textbook verification still answers exactly


def rsa_textbook_verify(n_bytes: bytes, e_bytes: bytes, signature: bytes, t: bytes) -> bool:
    """EMSA-PKCS1-v1_5 verification by modular exponentiation (RFC 8017 §8.2.2, §9.2)."""
    n, e, s = _int(n_bytes), _int(e_bytes), _int(signature)
    k = (n.bit_length() + 7) // 8
    if (n.bit_length() > TEXTBOOK_MAX_MODULUS_BITS
            or e.bit_length() > TEXTBOOK_MAX_RSA_EXPONENT_BITS):
        raise UnsupportedAlgorithm(
            f"RSA key of {n.bit_length()} bits with a {e.bit_length()}-bit exponent is outside "
            f"what meshkp verifies (modulus <= {TEXTBOOK_MAX_MODULUS_BITS} bits, exponent <= "
            f"{TEXTBOOK_MAX_RSA_EXPONENT_BITS} bits)"
        )
    if n < 3 or not 0 < s < n or k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return pow(s, e, n).to_bytes(k, "big") == expected


# --- DSA (RFC 9580 §5.2.3.2; FIPS 186-4 §4.7) ---------------------------------------------


def _verify_dsa(signer: PublicKey, material: bytes, digest: bytes) -> bool:
    r, s = _mpis(material, 2)
    p, q, g, y = signer.material
    key = _dsa_key(p, q, g, y)
    if key is not None:
        try:
            key.verify(encode_dss_signature(_int(r), _int(s)), digest,
                       Prehashed(_BY_DIGEST_SIZE[len(digest)]()))
            return True
        except InvalidSignature:
            return False
    return dsa_textbook_verify(p, q, g, y, _int(r), _int(s), digest)


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _dsa_key(p: bytes, q: bytes, g: bytes, y: bytes) -> dsa.DSAPublicKey | None:
    try:
        parameters = dsa.DSAParameterNumbers(_int(p), _int(q), _int(g))
        return dsa.DSAPublicNumbers(_int(y), parameters).public_key()
    except (ValueError, LibraryUnsupported):
        return None  # p or q of a size outside FIPS 186 (real keys have them)


def dsa_textbook_verify(p_bytes: bytes, q_bytes: bytes, g_bytes: bytes, y_bytes: bytes,
                        r: int, s: int, digest: bytes) -> bool:
    """DSA verification with pow(); the digest is cut to q's bit length (FIPS 186-4 §4.6)."""
    p, q, g, y = _int(p_bytes), _int(q_bytes), _int(g_bytes), _int(y_bytes)
    if p.bit_length() > TEXTBOOK_MAX_DSA_P_BITS or q.bit_length() > TEXTBOOK_MAX_DSA_Q_BITS:
        raise UnsupportedAlgorithm(
            f"DSA key with p of {p.bit_length()} bits and q of {q.bit_length()} bits is outside "
            f"what meshkp verifies (p <= {TEXTBOOK_MAX_DSA_P_BITS}, q <= "
            f"{TEXTBOOK_MAX_DSA_Q_BITS} bits)"
        )
    if p < 3 or q < 2 or not (0 < r < q and 0 < s < q):
        return False
    z = _int(digest)
    excess = 8 * len(digest) - q.bit_length()
    if excess > 0:
        z >>= excess
    w = pow(s, -1, q)
    v = (pow(g, z * w % q, p) * pow(y, r * w % q, p)) % p % q
    return v == r


# --- ECDSA (RFC 9580 §5.2.3.2) and EdDSA (§5.2.3.3-5) -----------------------------------


def _verify_ecdsa(signer: PublicKey, material: bytes, digest: bytes) -> bool:
    r, s = _mpis(material, 2)
    key = _ecdsa_key(signer.curve or "", signer.material[1])
    try:
        key.verify(encode_dss_signature(_int(r), _int(s)), digest,
                   ec.ECDSA(Prehashed(_BY_DIGEST_SIZE[len(digest)]())))
        return True
    except InvalidSignature:
        return False


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _ecdsa_key(curve: str, point: bytes) -> ec.EllipticCurvePublicKey:
    # The MPI is the SEC1 point, 0x04 || x || y (RFC 9580 §11.2); compressed points never
    # appear in OpenPGP, and from_encoded_point rejects anything off the curve (ValueError).
    if not point.startswith(b"\x04"):
        raise ValueError("ECDSA point is not in uncompressed SEC1 form")
    return ec.EllipticCurvePublicKey.from_encoded_point(_ECDSA_CURVES[curve], point)


def _verify_eddsa_legacy(signer: PublicKey, material: bytes, digest: bytes) -> bool:
    r, s = _mpis(material, 2)
    point = signer.material[1]
    # RFC 9580 §5.5.5.5: the point is 0x40 || the 32-octet native public key; the signature
    # is R and S as MPIs, each the native 32 octets with leading zeros stripped (§5.2.3.3).
    r, s = r.lstrip(b"\0"), s.lstrip(b"\0")
    if len(point) != 33 or point[0] != 0x40 or len(r) > 32 or len(s) > 32:
        return False
    return _verify_ed25519(point[1:], r.rjust(32, b"\0") + s.rjust(32, b"\0"), digest)


def _verify_ed25519(public: bytes, signature: bytes, digest: bytes) -> bool:
    """Ed25519 (RFC 8032 §5.1.7) of `digest`, the message OpenPGP signs (RFC 9580 §5.2.3.4)."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + digest, public)
        return True
    except BadSignatureError:
        return False


def _verify_native(key: Any, signature: bytes, size: int, digest: bytes) -> bool:
    # EdDSA in OpenPGP signs the digest as the message (RFC 9580 §5.2.3.4-5).
    if len(signature) != size:
        return False
    try:
        key.verify(signature, digest)
        return True
    except InvalidSignature:
        return False


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _ed448_key(public: bytes) -> ed448.Ed448PublicKey:
    return ed448.Ed448PublicKey.from_public_bytes(public)


# --- helpers ----------------------------------------------------------------------------


def _mpis(material: bytes, count: int) -> list[bytes]:
    """Exactly `count` MPIs; trailing octets make the material malformed."""
    reader = Reader(material, "signature material")
    values = [reader.mpi() for _ in range(count)]
    if reader.remaining():
        raise MalformedPacket(f"signature material: {reader.remaining()} octets after the MPIs")
    return values


def _int(magnitude: bytes) -> int:
    return int.from_bytes(magnitude, "big")


def _algorithm_name(algorithm: int) -> str:
    try:
        return PublicKeyAlgorithm(algorithm).name
    except ValueError:
        if 30 <= algorithm <= 36:
            return "post-quantum, draft-ietf-openpgp-pqc"
        return "unknown"
