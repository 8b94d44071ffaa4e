"""Signature packets (RFC 9580 §5.2): header fields, subpackets, and the bytes that were hashed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from meshkp.errors import MalformedPacket
from meshkp.openpgp.mpi import Reader


class SigType(IntEnum):
    """Signature types used on certificates (RFC 9580 §5.2.1)."""

    GENERIC_CERT = 0x10
    PERSONA_CERT = 0x11
    CASUAL_CERT = 0x12
    POSITIVE_CERT = 0x13
    SUBKEY_BINDING = 0x18
    PRIMARY_KEY_BINDING = 0x19
    DIRECT_KEY = 0x1F
    KEY_REVOCATION = 0x20
    SUBKEY_REVOCATION = 0x28
    CERT_REVOCATION = 0x30


CERTIFICATIONS = frozenset({0x10, 0x11, 0x12, 0x13})


class Subpacket(IntEnum):
    """Subpacket types meshkp reads (RFC 9580 §5.2.3.7)."""

    CREATION_TIME = 2
    SIG_EXPIRATION = 3
    REVOCABLE = 7
    KEY_EXPIRATION = 9
    ISSUER_KEY_ID = 16
    PRIMARY_USER_ID = 25
    KEY_FLAGS = 27
    REVOCATION_REASON = 29
    EMBEDDED_SIGNATURE = 32
    ISSUER_FINGERPRINT = 33


@dataclass(frozen=True, slots=True)
class SubpacketData:
    type: int
    critical: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed signature packet.

    `hashed_prefix` is the part of the body that is hashed into the signature (from the
    version octet through the hashed subpackets, RFC 9580 §5.2.4); for v3 it is the
    5 octets of type and creation time. `material` holds the algorithm-specific values
    (MPIs, or native fixed-size fields for Ed25519/Ed448).
    """

    version: int
    sig_type: int
    pubkey_algorithm: int
    hash_algorithm: int
    hashed: tuple[SubpacketData, ...]
    unhashed: tuple[SubpacketData, ...]
    hashed_prefix: bytes
    left16: bytes
    salt: bytes
    material: bytes
    created: int
    issuer_key_id: bytes | None
    issuer_fingerprint: bytes | None

    def hashed_value(self, kind: int) -> bytes | None:
        """Data of the first hashed subpacket of `kind` (hashed ones are the trusted ones)."""
        for sub in self.hashed:
            if sub.type == kind:
                return sub.data
        return None

    def hashed_u32(self, kind: int) -> int | None:
        value = self.hashed_value(kind)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    @property
    def expiration_seconds(self) -> int | None:
        """Signature validity period after creation; None or 0 means it never expires."""
        return self.hashed_u32(Subpacket.SIG_EXPIRATION)

    @property
    def key_expiration_seconds(self) -> int | None:
        """Key validity period after key creation; None or 0 means it never expires."""
        return self.hashed_u32(Subpacket.KEY_EXPIRATION)

    @property
    def is_primary_user_id(self) -> bool:
        value = self.hashed_value(Subpacket.PRIMARY_USER_ID)
        return bool(value and value[0])

    def embedded_signatures(self) -> list[Signature]:
        """Embedded signatures (primary key binding, 0x19) from either area; bad ones skipped."""
        found = []
        for sub in self.hashed + self.unhashed:
            if sub.type == Subpacket.EMBEDDED_SIGNATURE:
                try:
                    found.append(parse_signature(sub.data))
                except MalformedPacket:
                    continue
        return found

    def issuer_matches(self, key_id: bytes, fingerprint: bytes) -> bool:
        """True if the issuer fields name this key (either field; absent fields don't match)."""
        if self.issuer_fingerprint is not None:
            return self.issuer_fingerprint == fingerprint
        return self.issuer_key_id is not None and self.issuer_key_id == key_id


def parse_signature(body: bytes) -> Signature:
    """Parse a signature packet body; raise MalformedPacket with the reason."""
    reader = Reader(body, "signature packet")
    version = reader.u8()
    if version in (2, 3):
        return _parse_v3(reader, body)
    if version in (4, 6):
        return _parse_v4_v6(reader, body, version)
    raise MalformedPacket(f"unsupported signature version {version}")


def _parse_v3(reader: Reader, body: bytes) -> Signature:
    if reader.u8() != 5:
        raise MalformedPacket("v3 signature: hashed material length must be 5")
    hashed_prefix = reader.take(5)
    issuer = reader.take(8)
    pubkey_algorithm, hash_algorithm = reader.u8(), reader.u8()
    left16 = reader.take(2)
    return Signature(
        version=3, sig_type=hashed_prefix[0], pubkey_algorithm=pubkey_algorithm,
        hash_algorithm=hash_algorithm, hashed=(), unhashed=(), hashed_prefix=hashed_prefix,
        left16=left16, salt=b"", material=reader.rest(),
        created=int.from_bytes(hashed_prefix[1:5], "big"), issuer_key_id=issuer,
        issuer_fingerprint=None,
    )


def _parse_v4_v6(reader: Reader, body: bytes, version: int) -> Signature:
    sig_type, pubkey_algorithm, hash_algorithm = reader.u8(), reader.u8(), reader.u8()
    length_size = 2 if version == 4 else 4
    hashed_area = reader.take(int.from_bytes(reader.take(length_size), "big"))
    hashed_prefix = body[: reader.pos]
    unhashed_area = reader.take(int.from_bytes(reader.take(length_size), "big"))
    left16 = reader.take(2)
    salt = b""
    if version == 6:
        salt = reader.take(reader.u8())
    hashed = parse_subpackets(hashed_area)
    unhashed = parse_subpackets(unhashed_area)
    created = _first_u32(hashed, Subpacket.CREATION_TIME)
    if created is None:
        raise MalformedPacket("signature has no hashed creation time (RFC 9580 §5.2.3.11)")
    return Signature(
        version=version, sig_type=sig_type, pubkey_algorithm=pubkey_algorithm,
        hash_algorithm=hash_algorithm, hashed=hashed, unhashed=unhashed,
        hashed_prefix=hashed_prefix, left16=left16, salt=salt, material=reader.rest(),
        created=created, issuer_key_id=_issuer_key_id(hashed + unhashed),
        issuer_fingerprint=_issuer_fingerprint(hashed + unhashed),
    )


def parse_subpackets(area: bytes) -> tuple[SubpacketData, ...]:
    """Split a subpacket area (RFC 9580 §5.2.3.7); a length past the area is malformed."""
    reader = Reader(area, "signature subpacket area")
    found = []
    while reader.remaining():
        first = reader.u8()
        if first < 192:
            length = first
        elif first < 255:
            length = ((first - 192) << 8) + reader.u8() + 192
        else:
            length = reader.u32()
        if length == 0:
            raise MalformedPacket("signature subpacket with zero length (no type octet)")
        content = reader.take(length)
        found.append(SubpacketData(content[0] & 0x7F, bool(content[0] & 0x80), content[1:]))
    return tuple(found)


def _first_u32(subpackets: tuple[SubpacketData, ...], kind: int) -> int | None:
    for sub in subpackets:
        if sub.type == kind and len(sub.data) == 4:
            return int.from_bytes(sub.data, "big")
    return None


def _issuer_key_id(subpackets: tuple[SubpacketData, ...]) -> bytes | None:
    for sub in subpackets:
        if sub.type == Subpacket.ISSUER_KEY_ID and len(sub.data) == 8:
            return sub.data
    for sub in subpackets:
        if sub.type == Subpacket.ISSUER_FINGERPRINT and len(sub.data) in (21, 33):
            fingerprint = sub.data[1:]
            return fingerprint[-8:] if sub.data[0] == 4 else fingerprint[:8]
    return None


def _issuer_fingerprint(subpackets: tuple[SubpacketData, ...]) -> bytes | None:
    for sub in subpackets:
        if sub.type == Subpacket.ISSUER_FINGERPRINT and len(sub.data) in (21, 33):
            return sub.data[1:]
    return None
