"""Public key and subkey packets: version, algorithm, material, fingerprint and key ID.

v3 (RFC 4880 §5.5.2, fingerprint MD5), v4 (SHA-1, RFC 9580 §5.5.4.2) and v6 (SHA-256,
RFC 9580 §5.5.4.3). v5 (LibrePGP) is not part of RFC 9580: such packets raise
`MalformedPacket` so the normaliser drops the subkey and keeps the rest of the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from meshkp.errors import MalformedPacket
from meshkp.openpgp.mpi import Reader


class PublicKeyAlgorithm(IntEnum):
    """RFC 9580 §9.1, plus the post-quantum codes of draft-ietf-openpgp-pqc."""

    RSA = 1
    RSA_ENCRYPT = 2
    RSA_SIGN = 3
    ELGAMAL = 16
    DSA = 17
    ECDH = 18
    ECDSA = 19
    ELGAMAL_SIGN = 20
    EDDSA_LEGACY = 22
    X25519 = 25
    X448 = 26
    ED25519 = 27
    ED448 = 28


# Curve OIDs (RFC 9580 §9.2) -> (name, bits).
CURVES: dict[bytes, tuple[str, int]] = {
    bytes.fromhex("2a8648ce3d030107"): ("nistp256", 256),
    bytes.fromhex("2b81040022"): ("nistp384", 384),
    bytes.fromhex("2b81040023"): ("nistp521", 521),
    bytes.fromhex("2b2403030208010107"): ("brainpoolP256r1", 256),
    bytes.fromhex("2b240303020801010b"): ("brainpoolP384r1", 384),
    bytes.fromhex("2b240303020801010d"): ("brainpoolP512r1", 512),
    bytes.fromhex("2b06010401da470f01"): ("ed25519", 255),
    bytes.fromhex("2b060104019755010501"): ("cv25519", 255),
    bytes.fromhex("2b8104000a"): ("secp256k1", 256),
    bytes.fromhex("2b6570"): ("ed448", 448),
    bytes.fromhex("2b656f"): ("x448", 448),
}

# Native fixed-size keys (RFC 9580 §5.5.5.7-10): algorithm -> (key bytes, bits).
_NATIVE_SIZES = {
    PublicKeyAlgorithm.X25519: (32, 255),
    PublicKeyAlgorithm.X448: (56, 448),
    PublicKeyAlgorithm.ED25519: (32, 255),
    PublicKeyAlgorithm.ED448: (57, 448),
}


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A parsed public (sub)key packet. `material` holds the algorithm fields in order.

    `body` is the canonical body: for v4 keys of a known algorithm, trailing bytes after the
    key material are cut off (the normaliser stores this body, not the uploaded one).
    """

    version: int
    created: int
    algorithm: int
    material: tuple[bytes, ...]
    curve: str | None
    bits: int
    fingerprint: bytes
    body: bytes
    expiry_days_v3: int = 0

    @property
    def key_id(self) -> bytes:
        """The 64-bit key ID: low 64 bits of the fingerprint (v4), high 64 bits (v6), low of n (v3)."""
        if self.version == 6:
            return self.fingerprint[:8]
        if self.version < 4:
            return self.material[0][-8:].rjust(8, b"\0")
        return self.fingerprint[-8:]

    @property
    def short_id(self) -> bytes:
        return self.key_id[-4:]


# Parsed key packets kept by body. One upload parses its primary key and each subkey 3-4
# times (grouping, normalising, the self-signature hashes, the index terms): ~5 µs each, ~15 µs
# of a small upload (docs/benchmarks.md, issue 14). PublicKey is frozen, so sharing is safe.
# Only bodies up to PARSED_KEY_CACHED_BYTES (an RSA-16384 key is ~2 KB) are kept, so a client
# sending key packets of junk cannot make the 1,024 entries hold more than ~10 MB.
PARSED_KEYS_CACHED = 1024
PARSED_KEY_CACHED_BYTES = 4096


def parse_public_key(body: bytes) -> PublicKey:
    """Parse a public key or subkey packet body; raise MalformedPacket with the reason."""
    if type(body) is bytes and len(body) <= PARSED_KEY_CACHED_BYTES:
        return _parse_cached(body)
    return _parse(body)


def _parse(body: bytes) -> PublicKey:
    reader = Reader(body, "public key packet")
    version = reader.u8()
    if version in (2, 3):
        created = reader.u32()
        expiry_days = reader.u16()
        algorithm = reader.u8()
        if algorithm not in (1, 2, 3):
            raise MalformedPacket(f"v3 key with non-RSA algorithm {algorithm}")
        n, e = reader.mpi(), reader.mpi()
        _expect_end(reader)
        return PublicKey(
            version=3, created=created, algorithm=algorithm, material=(n, e), curve=None,
            bits=_bit_length(n), fingerprint=hashlib.md5(n + e).digest(), body=body,
            expiry_days_v3=expiry_days,
        )
    if version == 4:
        created = reader.u32()
        algorithm = reader.u8()
        material, curve, bits = _parse_material(reader, algorithm, version)
        # Bytes after the material of a known algorithm (seen on old SKS keys) are not part of
        # the key: GnuPG ignores them and fingerprints the canonical body, and so do we.
        body = body[: reader.pos]
        fingerprint = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
        return PublicKey(4, created, algorithm, material, curve, bits, fingerprint, body)
    if version == 6:
        created = reader.u32()
        algorithm = reader.u8()
        material_length = reader.u32()
        if material_length != reader.remaining():
            raise MalformedPacket(
                f"v6 key declares {material_length} bytes of key material, has {reader.remaining()}"
            )
        material, curve, bits = _parse_material(reader, algorithm, version)
        _expect_end(reader)
        fingerprint = hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body).digest()
        return PublicKey(6, created, algorithm, material, curve, bits, fingerprint, body)
    if version == 5:
        raise MalformedPacket("v5 (LibrePGP) key packets are not part of RFC 9580")
    raise MalformedPacket(f"unknown key packet version {version}")


_parse_cached = lru_cache(maxsize=PARSED_KEYS_CACHED)(_parse)


def _parse_material(
    reader: Reader, algorithm: int, version: int
) -> tuple[tuple[bytes, ...], str | None, int]:
    if algorithm in (1, 2, 3):
        n, e = reader.mpi(), reader.mpi()
        return (n, e), None, _bit_length(n)
    if algorithm == 17:
        p, q, g, y = reader.mpi(), reader.mpi(), reader.mpi(), reader.mpi()
        return (p, q, g, y), None, _bit_length(p)
    if algorithm in (16, 20):
        p, g, y = reader.mpi(), reader.mpi(), reader.mpi()
        return (p, g, y), None, _bit_length(p)
    if algorithm in (19, 22):
        oid = reader.oid()
        point = reader.mpi()
        name, bits = CURVES.get(oid, (f"oid:{oid.hex()}", 0))
        return (oid, point), name, bits
    if algorithm == 18:
        oid = reader.oid()
        point = reader.mpi()
        kdf_length = reader.u8()
        kdf = reader.take(kdf_length)
        name, bits = CURVES.get(oid, (f"oid:{oid.hex()}", 0))
        return (oid, point, kdf), name, bits
    if algorithm in _NATIVE_SIZES:
        size, bits = _NATIVE_SIZES[PublicKeyAlgorithm(algorithm)]
        key = reader.take(size)
        return (key,), PublicKeyAlgorithm(algorithm).name.lower(), bits
    # An algorithm we cannot interpret (e.g. post-quantum): the fingerprint still covers the
    # whole body, so the key can be stored and found; verification will say it is unsupported.
    return (reader.rest(),), None, 0


def _expect_end(reader: Reader) -> None:
    if reader.remaining():
        raise MalformedPacket(f"{reader.what}: {reader.remaining()} unexpected trailing bytes")


def _bit_length(magnitude: bytes) -> int:
    return int.from_bytes(magnitude, "big").bit_length()
