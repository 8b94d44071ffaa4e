"""Bare revocation certificates: a key revocation signature (0x20) uploaded without its key.

`gpg --gen-revoke` writes one signature packet and nothing else (RFC 9580 §5.2.1.11). It
names its key only through the issuer subpackets, so ingest looks the stored key up by the
issuer fingerprint or key ID and calls `apply_revocation` on each candidate; the signature
is merged only into a key whose primary it verifies against.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshkp.errors import MalformedPacket, UnsupportedAlgorithm
from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.signature import Signature, SigType, parse_signature
from meshkp.openpgp.verify import verify_binding


@dataclass(frozen=True, slots=True)
class RevocationCertificate:
    """A standalone key revocation signature, not yet matched to a stored key."""

    packet: Packet
    signature: Signature

    @property
    def issuer(self) -> str:
        """The issuer as hex, fingerprint if known, else the 64-bit key ID ('' if neither)."""
        found = self.signature.issuer_fingerprint or self.signature.issuer_key_id
        return found.hex().upper() if found else ""


def parse_revocation(packet: Packet) -> RevocationCertificate:
    """A revocation certificate from a signature packet; MalformedPacket if it is not one."""
    if packet.tag != Tag.SIGNATURE:
        raise MalformedPacket(f"a revocation certificate is a signature packet, not tag {packet.tag}")
    sig = parse_signature(packet.body)
    if sig.sig_type != SigType.KEY_REVOCATION:
        raise MalformedPacket(
            f"a signature of type 0x{sig.sig_type:02x} outside a key; only a key revocation "
            "certificate (type 0x20) may be uploaded on its own"
        )
    if sig.issuer_key_id is None and sig.issuer_fingerprint is None:
        raise MalformedPacket("the revocation certificate names no issuer, so no key can be found")
    return RevocationCertificate(packet, sig)


def apply_revocation(
    stored: Certificate, revocation: RevocationCertificate | Packet
) -> Certificate | None:
    """`stored` with the revocation added if it verifies against stored's primary, else None."""
    if isinstance(revocation, Packet):
        try:
            revocation = parse_revocation(revocation)
        except MalformedPacket:
            return None
    primary = parse_public_key(stored.primary.packet.body)
    if not revocation.signature.issuer_matches(primary.key_id, primary.fingerprint):
        return None
    if revocation.packet in stored.primary.signatures:
        return stored
    try:
        valid = verify_binding(primary, revocation.signature, None)
    except UnsupportedAlgorithm:
        return None
    if not valid:
        return None
    primary_component = Component(
        stored.primary.packet, stored.primary.signatures | {revocation.packet}
    )
    return Certificate(
        fingerprint=stored.fingerprint,
        primary=primary_component,
        user_ids=stored.user_ids,
        user_attributes=stored.user_attributes,
        subkeys=stored.subkeys,
    )
