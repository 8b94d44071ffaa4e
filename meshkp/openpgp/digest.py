"""Certificate digests: the SKS MD5 digest (recon, op=hget, /pks/hashquery) and a SHA-256 state hash.

SKS hashes a key as the concatenation, in sorted order, of each packet framed as a 4-octet
big-endian tag, a 4-octet big-endian body length and the body (SKS `KeyHash.hash`,
Hockeypuck `sksDigestOpaque`). Packets sort by tag, then by body bytes; the original
packet headers never enter the hash, so legacy and new-format encodings give one digest.
Trust packets are local to one keyring and never part of the digest (or of a stored key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.packet import CANONICAL, Packet, Tag


def sks_digest(packets: Iterable[Packet]) -> str:
    """SKS MD5 digest of a packet collection, as 32 lowercase hex digits (trust packets skipped)."""
    hasher = hashlib.md5()
    for packet in sorted((p for p in packets if p.tag != Tag.TRUST), key=CANONICAL):
        hasher.update(packet.tag.to_bytes(4, "big"))
        hasher.update(len(packet.body).to_bytes(4, "big"))
        hasher.update(packet.body)
    return hasher.hexdigest()


def certificate_digest(cert: Certificate) -> str:
    """SKS MD5 digest of a normalised certificate (its packets are already deduplicated)."""
    return sks_digest(cert.packets())


def state_hash(cert: Certificate) -> bytes:
    """SHA-256 of the canonical transferable key: equal certificates, equal hash (Merkle leaves)."""
    return hashlib.sha256(cert.to_bytes()).digest()
