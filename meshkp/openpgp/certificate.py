"""A certificate as sets of packets per component: the OpenPGP half of the key record.

DESIGN.md "The key record is a CRDT": a certificate is the primary key plus user IDs,
user attributes and subkeys, each with the set of signatures bound to it. Merging two
copies of a key is a union per component, a join-semilattice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from meshkp.openpgp.packet import CANONICAL, Packet, Tag


@dataclass(frozen=True, slots=True)
class Component:
    """One component packet (key, user ID, user attribute, subkey) and its signatures."""

    packet: Packet
    signatures: frozenset[Packet] = frozenset()

    def merge(self, other: Component) -> Component:
        if other.packet != self.packet:
            raise ValueError("cannot merge components of different packets")
        return Component(self.packet, self.signatures | other.signatures)

    def ordered_signatures(self) -> list[Packet]:
        """Signatures in canonical order (by body, as SKS sorts packets)."""
        return sorted(self.signatures, key=CANONICAL)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A normalised certificate. Maps are keyed by the component packet's body."""

    fingerprint: bytes
    primary: Component
    user_ids: Mapping[bytes, Component] = field(default_factory=dict)
    user_attributes: Mapping[bytes, Component] = field(default_factory=dict)
    subkeys: Mapping[bytes, Component] = field(default_factory=dict)

    def merge(self, other: Certificate) -> Certificate:
        """The union of two copies of the same key (commutative, associative, idempotent)."""
        if other.fingerprint != self.fingerprint:
            raise ValueError("cannot merge certificates with different fingerprints")
        return Certificate(
            fingerprint=self.fingerprint,
            primary=self.primary.merge(other.primary),
            user_ids=_merge_maps(self.user_ids, other.user_ids),
            user_attributes=_merge_maps(self.user_attributes, other.user_attributes),
            subkeys=_merge_maps(self.subkeys, other.subkeys),
        )

    def packets(self) -> Iterator[Packet]:
        """All packets in transferable-key order (RFC 9580 §10.1), canonical within each group."""
        yield self.primary.packet
        yield from self.primary.ordered_signatures()
        for group in (self.user_ids, self.user_attributes, self.subkeys):
            for body in sorted(group):
                component = group[body]
                yield component.packet
                yield from component.ordered_signatures()

    def to_bytes(self) -> bytes:
        """The binary transferable public key, as op=get serves it."""
        return b"".join(packet.encode() for packet in self.packets())

    def components(self) -> Iterator[Component]:
        yield self.primary
        for group in (self.user_ids, self.user_attributes, self.subkeys):
            yield from group.values()


def _merge_maps(
    left: Mapping[bytes, Component], right: Mapping[bytes, Component]
) -> dict[bytes, Component]:
    merged = dict(left)
    for body, component in right.items():
        mine = merged.get(body)
        merged[body] = component if mine is None else mine.merge(component)
    return merged


COMPONENT_TAGS = {
    Tag.USER_ID: "user_ids",
    Tag.USER_ATTRIBUTE: "user_attributes",
    Tag.PUBLIC_SUBKEY: "subkeys",
}


def certificate_from_packets(fingerprint: bytes, packets: list[Packet]) -> Certificate:
    """Regroup an already-normalised packet sequence (as stored) without re-verifying it."""
    if not packets or packets[0].tag != Tag.PUBLIC_KEY:
        raise ValueError("a stored certificate must start with its primary key packet")
    groups: dict[str, dict[bytes, Component]] = {name: {} for name in COMPONENT_TAGS.values()}
    primary_sigs: set[Packet] = set()
    current: set[Packet] = primary_sigs
    for packet in packets[1:]:
        if packet.tag == Tag.SIGNATURE:
            current.add(packet)
            continue
        group = groups[COMPONENT_TAGS[Tag(packet.tag)]]
        current = set()
        group[packet.body] = _PendingComponent(packet, current)  # type: ignore[assignment]
    return Certificate(
        fingerprint=fingerprint,
        primary=Component(packets[0], frozenset(primary_sigs)),
        **{
            name: {body: Component(p.packet, frozenset(p.signatures)) for body, p in group.items()}
            for name, group in groups.items()
        },
    )


@dataclass(slots=True)
class _PendingComponent:
    packet: Packet
    signatures: set[Packet]
