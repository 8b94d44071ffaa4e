"""What a certificate signature hashes (RFC 9580 §5.2.4) and the hash algorithms that do it.

The digest of a self-signature covers, in order: the v6 salt, the primary key, the
component it binds (user ID, user attribute or subkey; nothing for direct-key and
key-revocation signatures), the hashed part of the signature and a trailer. Each
version frames these differently, and that framing is all this module knows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import hashes

from meshkp.errors import UnsupportedAlgorithm
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.signature import Signature


@dataclass(frozen=True, slots=True)
class HashAlgorithm:
    """One hash of RFC 9580 §9.5 with what RSA and v6 signatures need to know about it."""

    id: int
    name: str  # the hashlib name
    digest_info: bytes  # DER prefix of the PKCS#1 v1.5 DigestInfo (RFC 9580 §5.2.2)
    v6_salt_size: int | None  # RFC 9580 §9.5; None: must not be used in v6 signatures
    library: type[hashes.HashAlgorithm] | None  # the `cryptography` class, if it has one

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.name)


def _info(hex_prefix: str) -> bytes:
    return bytes.fromhex(hex_prefix)


# RFC 9580 §9.5 (ids), §5.2.2 (DigestInfo prefixes). MD5, SHA-1 and RIPEMD-160 stay accepted:
# the self-signatures of most long-lived real keys (e.g. all of debian-keyring's older
# ones) are SHA-1 era, and refusing them would make those keys unloadable.
HASH_ALGORITHMS: dict[int, HashAlgorithm] = {
    h.id: h
    for h in (
        HashAlgorithm(1, "md5", _info("3020300c06082a864886f70d020505000410"), None, hashes.MD5),
        HashAlgorithm(2, "sha1", _info("3021300906052b0e03021a05000414"), None, hashes.SHA1),
        HashAlgorithm(3, "ripemd160", _info("3021300906052b2403020105000414"), None, None),
        HashAlgorithm(
            8, "sha256", _info("3031300d060960864801650304020105000420"), 16, hashes.SHA256
        ),
        HashAlgorithm(
            9, "sha384", _info("3041300d060960864801650304020205000430"), 24, hashes.SHA384
        ),
        HashAlgorithm(
            10, "sha512", _info("3051300d060960864801650304020305000440"), 32, hashes.SHA512
        ),
        HashAlgorithm(
            11, "sha224", _info("302d300d06096086480165030402040500041c"), 16, hashes.SHA224
        ),
        HashAlgorithm(
            12, "sha3_256", _info("3031300d060960864801650304020805000420"), 16, hashes.SHA3_256
        ),
        HashAlgorithm(
            14, "sha3_512", _info("3051300d060960864801650304020a05000440"), 32, hashes.SHA3_512
        ),
    )
}


def hash_algorithm(hash_id: int) -> HashAlgorithm:
    """The hash for an id; UnsupportedAlgorithm if it is unknown or missing from this Python."""
    algorithm = HASH_ALGORITHMS.get(hash_id)
    if algorithm is None:
        raise UnsupportedAlgorithm(
            f"hash algorithm {hash_id} is not one of RFC 9580 §9.5 that meshkp verifies "
            f"({', '.join(h.name for h in HASH_ALGORITHMS.values())})"
        )
    if not _available(algorithm.name):
        raise UnsupportedAlgorithm(
            f"hash algorithm {hash_id} ({algorithm.name}) is not provided by this Python's "
            "OpenSSL (OpenSSL 3 keeps RIPEMD-160 in its legacy provider); signatures using "
            "it cannot be verified on this node"
        )
    return algorithm


@cache
def _available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def key_frame(sig_version: int, key_body: bytes) -> bytes:
    """How a key packet enters the hash: 0x99 + 2-octet length (v3/v4), 0x9B + 4 (v6)."""
    if sig_version == 6:
        return b"\x9b" + len(key_body).to_bytes(4, "big")
    # A v4 key body never exceeds 65535 octets (its packet length field is 2 octets here);
    # to_bytes raises OverflowError for one that does, and the caller treats it as invalid.
    return b"\x99" + len(key_body).to_bytes(2, "big")


def component_frame(sig_version: int, tag: int, body: bytes) -> bytes:
    """How a user ID or attribute enters the hash (RFC 9580 §5.2.4; RFC 4880 §5.2.4 for v3)."""
    if sig_version < 4:
        return b""  # v3 signatures hash the bare user ID
    marker = b"\xb4" if tag == Tag.USER_ID else b"\xd1"
    return marker + len(body).to_bytes(4, "big")


def trailer(sig: Signature) -> bytes:
    """The final bytes: v4/v6 append version, 0xFF and the hashed length; v3 has none."""
    if sig.version < 4:
        return b""
    return bytes([sig.version, 0xFF]) + (len(sig.hashed_prefix) & 0xFFFFFFFF).to_bytes(4, "big")


def signature_digest(
    algorithm: HashAlgorithm,
    sig: Signature,
    primary_body: bytes,
    target: tuple[int, bytes] | None,
) -> bytes:
    """The digest `sig` signs over the primary key body and the (tag, body) it binds, if any.

    A subkey target is framed like a key; user IDs and attributes as in component_frame.
    Raises OverflowError for a key body too long for a v3/v4 frame.
    """
    hasher = algorithm.new()
    if sig.version == 6:
        hasher.update(sig.salt)
    hasher.update(key_frame(sig.version, primary_body))
    hasher.update(primary_body)
    if target is not None:
        tag, body = target
        if tag == Tag.PUBLIC_SUBKEY:
            hasher.update(key_frame(sig.version, body))
        else:
            hasher.update(component_frame(sig.version, tag, body))
        hasher.update(body)
    hasher.update(sig.hashed_prefix)
    hasher.update(trailer(sig))
    return hasher.digest()
