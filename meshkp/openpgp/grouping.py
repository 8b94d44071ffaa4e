"""Group the packets of one transferable public key into its components (RFC 9580 §10.1).

A transferable key is a primary key, its direct signatures, then user IDs, user
attributes and subkeys, each followed by its signatures. This module decides which
packets survive structurally, before any signature is checked:

- trust (SKS/GnuPG keyring metadata), marker and padding packets are dropped and do not
  end the current component: GnuPG writes trust packets after signatures;
- user IDs containing NUL bytes or longer than `Limits.uid_bytes`, subkeys that do not
  parse (e.g. v5, LibrePGP), secret subkeys, unknown packets and packets longer than
  `Limits.packet_bytes` are dropped *together with the signatures that follow them*, so
  those signatures never attach to the previous component;
- a component that appears twice is one component (its signature sets are unioned), and
  so is the primary key: two copies of one key concatenated normalise as their union.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from meshkp.errors import KeyRejected, MalformedPacket
from meshkp.limits import Limits
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import PublicKey, parse_public_key

# Packets that carry no part of the certificate and sit between its packets.
_IGNORED = frozenset({Tag.TRUST, Tag.MARKER, Tag.PADDING})
_COMPONENT_TAGS = frozenset({Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY})


@dataclass(slots=True)
class RawComponent:
    """A component packet (canonical form) with the signature packets that followed it."""

    packet: Packet
    signatures: set[Packet] = field(default_factory=set)


@dataclass(slots=True)
class RawKey:
    """One transferable key split into components; signatures not yet checked."""

    primary: PublicKey
    primary_packet: Packet
    direct: set[Packet] = field(default_factory=set)
    components: dict[Packet, RawComponent] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # why packets were dropped, for logs
    # Set by the normaliser: third-party signatures it dropped because their component (a
    # user ID uploaded without its self-signature) or the whole key had no valid
    # self-signature here. A stored copy can keep them: ingest then uses normalise_update.
    orphans: int = 0


def fingerprint_hex(key: PublicKey) -> str:
    return key.fingerprint.hex().upper()


def parse_primary(packet: Packet) -> PublicKey:
    """Parse a primary key packet; KeyRejected with the parser's reason if it cannot be read."""
    try:
        return parse_public_key(packet.body)
    except MalformedPacket as exc:
        raise KeyRejected(f"primary key packet cannot be parsed: {exc}") from None


def group_packets(packets: Sequence[Packet], limits: Limits) -> RawKey:
    """Split one transferable key (first packet: public key) into a RawKey."""
    if not packets or packets[0].tag != Tag.PUBLIC_KEY:
        first = f"tag {packets[0].tag}" if packets else "nothing"
        raise KeyRejected(f"a public key must start with a public key packet (tag 6), got {first}")
    head = packets[0]
    if len(head.body) > limits.packet_bytes:
        raise KeyRejected(
            f"primary key packet of {len(head.body)} bytes exceeds the packet_bytes limit "
            f"({limits.packet_bytes})"
        )
    primary = parse_primary(head)
    key = RawKey(primary=primary, primary_packet=Packet(Tag.PUBLIC_KEY, primary.body))
    # Where the next signature goes: the primary's set, a component's set, or None (dropped).
    sink: set[Packet] | None = key.direct
    for packet in packets[1:]:
        if packet.tag in _IGNORED:
            continue
        if len(packet.body) > limits.packet_bytes:
            key.dropped.append(f"tag {packet.tag} packet over packet_bytes")
            if packet.tag != Tag.SIGNATURE:
                sink = None
            continue
        if packet.tag == Tag.SIGNATURE:
            if sink is not None:
                sink.add(packet)
            continue
        if packet.tag == Tag.PUBLIC_KEY:
            # The same primary again (two copies of one key, concatenated): its signatures
            # are the primary's. Any other primary key does not belong in this key.
            same = _canonical_key_body(packet) == key.primary.body
            sink = key.direct if same else None
            if not same:
                key.dropped.append("a second, different primary key packet")
            continue
        component = _component(key, packet, limits) if packet.tag in _COMPONENT_TAGS else None
        if component is None:
            if packet.tag not in _COMPONENT_TAGS:
                key.dropped.append(f"tag {packet.tag} packet")
            sink = None
            continue
        existing = key.components.setdefault(component.packet, component)
        sink = existing.signatures
    return key


def _canonical_key_body(packet: Packet) -> bytes | None:
    try:
        return parse_public_key(packet.body).body
    except MalformedPacket:
        return None


def _component(key: RawKey, packet: Packet, limits: Limits) -> RawComponent | None:
    if packet.tag == Tag.USER_ID:
        if b"\x00" in packet.body:
            key.dropped.append("user ID containing a NUL byte")
            return None
        if len(packet.body) > limits.uid_bytes:
            key.dropped.append(f"user ID of {len(packet.body)} bytes over uid_bytes")
            return None
        return RawComponent(packet)
    if packet.tag == Tag.USER_ATTRIBUTE:
        return RawComponent(packet)
    try:
        subkey = parse_public_key(packet.body)
    except MalformedPacket as exc:
        key.dropped.append(f"subkey that cannot be parsed ({exc})")
        return None
    if subkey.fingerprint == key.primary.fingerprint:
        key.dropped.append("subkey identical to the primary key")
        return None
    return RawComponent(Packet(Tag.PUBLIC_SUBKEY, subkey.body))
