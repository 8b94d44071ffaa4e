"""Normalisation: one transferable key in, one canonical `Certificate` out (or KeyRejected).

What is kept, per component (RFC 9580 §5.2.1 signature types, §10.1 structure):

| component        | self-signature (issuer = primary, or no issuer) | third-party signature      |
|------------------|--------------------------------------------------|----------------------------|
| primary key      | 0x1F direct-key, 0x20 key revocation; verified   | 0x10-0x13, 0x1F, 0x20, capped |
| user ID / attr.  | 0x10-0x13 certifications, 0x30 revocation; verified | same types, unverified, capped |
| subkey           | 0x18 binding, 0x28 revocation; verified          | dropped (martian.asc)      |

- A self-signature that does not verify is dropped: nobody but the key holder can make one,
  so a failing one is forged or damaged. Unless it verifies on another component of the
  same kind: then it was misfiled, and it moves there as `gpg --import` moves it
  (relocate.py; bounded by `Limits.relocation_hashes` and `bad_self_signatures`).
- A user ID, user attribute or subkey is kept only with at least one valid self-signature:
  a binding (certification, subkey binding) or a revocation. GnuPG keeps a user ID whose
  only self-signature is its revocation (debian-keyring strips the certifications of
  revoked user IDs: 163 of its keys have such), and so does Hockeypuck.
- Third-party signatures cannot be verified without the issuer's key. They are kept (they
  are the web of trust) but at most `Limits.sigs_per_component` per component: the N with
  the smallest SHA-256 of their encoding, a total order, so the cap commutes with merge.
  Self-signatures never count against the cap (only the key holder can add them).
- Third-party signatures on the primary key are kept as SKS and Hockeypuck keep them
  (designated-revoker revocations, and misplaced certifications that are part of the SKS
  digest peers compare, e.g. gentoo-l1.asc); other types there are dropped.
- A key is kept if at least one component, direct-key signature or self-revocation
  survived; otherwise KeyRejected("no valid self-signature"). A key none of whose
  self-signatures can be *checked* (e.g. a post-quantum primary) is rejected with
  "no verifiable self-signature ..." naming the algorithm.

Merge: once the validity of each component is fixed, `normalise` is a per-packet filter
and the cap keeps the N smallest by a total order, so `normalise(a ∪ b) ==
merge(normalise(a), normalise(b))` (`merge` re-applies the cap) whenever every copy is a
valid key and a component is valid in every copy it appears in, i.e. travels with its
self-signatures, as every implementation exports it (tests/unit/openpgp/
test_merge_properties.py). A copy holding a component *without* its self-signature loses
that component's third-party signatures when normalised alone; `normalise_update(stored,
packets)` normalises an upload together with the stored copy and keeps them (ingest does,
for uploads whose `RawKey.orphans` is not zero: keytext.PartialKey). The same holds for a
self-signature misfiled under a component whose rightful component is only in the other
copy: that case is not tracked (it needs a damaged upload of a partial key) and such a
signature is dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence

from meshkp.errors import KeyRejected, MalformedPacket, UnsupportedAlgorithm
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.grouping import RawKey, fingerprint_hex, group_packets
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.relocate import Stray, relocate
from meshkp.openpgp.signature import CERTIFICATIONS, Signature, SigType, parse_signature
from meshkp.openpgp.sigpeek import SigHeader, peek_signature
from meshkp.openpgp.verify import verify_binding

log = logging.getLogger(__name__)

_PRIMARY_SELF = frozenset({SigType.DIRECT_KEY, SigType.KEY_REVOCATION})
_PRIMARY_THIRD_PARTY = CERTIFICATIONS | _PRIMARY_SELF
_USER_SIGS = CERTIFICATIONS | {SigType.CERT_REVOCATION}
_SUBKEY_SELF = frozenset({SigType.SUBKEY_BINDING, SigType.SUBKEY_REVOCATION})
_COMPONENT_TAGS = (Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY)

# (component packet, or None for the primary) -> signature packet known to be a valid self-sig.
KnownValid = Collection[tuple[Packet | None, Packet]]


def claims_self(sig: Signature | SigHeader, primary: PublicKey) -> bool:
    """True if the signature names the primary as issuer, or names no issuer at all.

    The fingerprint decides when present (RFC 9580 §5.2.3.35), else the 64-bit key ID.
    """
    if sig.issuer_fingerprint is not None:
        return sig.issuer_fingerprint == primary.fingerprint
    return sig.issuer_key_id is None or sig.issuer_key_id == primary.key_id


def normalise(packets: Sequence[Packet], limits: Limits | None = None) -> Certificate:
    """The canonical certificate of one transferable key; KeyRejected says why if none."""
    limits = limits or Limits()
    return _normalise(group_packets(packets, limits), limits, known_valid=frozenset())


def normalise_grouped(key: RawKey, limits: Limits) -> Certificate:
    """normalise() of an already grouped key; afterwards `key.orphans` tells whether the
    upload held signatures that only a stored copy can place (see normalise_update)."""
    return _normalise(key, limits, known_valid=frozenset())


def normalise_update(
    stored: Certificate, packets: Sequence[Packet], limits: Limits | None = None
) -> Certificate:
    """normalise(stored's packets + packets), without re-verifying stored self-signatures."""
    limits = limits or Limits()
    key = group_packets(list(stored.packets()) + list(packets), limits)
    known: set[tuple[Packet | None, Packet]] = {(None, sig) for sig in stored.primary.signatures}
    for component in stored.components():
        if component is not stored.primary:
            known.update((component.packet, sig) for sig in component.signatures)
    return _normalise(key, limits, known_valid=known)


def merge(a: Certificate, b: Certificate, limits: Limits | None = None) -> Certificate:
    """Union of two normalised copies, with the third-party signature cap re-applied."""
    limits = limits or Limits()
    merged = a.merge(b)
    primary = parse_public_key(merged.primary.packet.body)
    return cap_signatures(merged, primary, limits.sigs_per_component)


def cap_signatures(cert: Certificate, primary: PublicKey, cap: int) -> Certificate:
    """Keep at most `cap` third-party signatures per component (smallest SHA-256 first)."""

    def capped(component: Component) -> Component:
        if len(component.signatures) <= cap:
            return component
        kept = _cap(component.signatures, primary, cap)
        return component if kept == component.signatures else Component(component.packet, kept)

    return Certificate(
        fingerprint=cert.fingerprint,
        primary=capped(cert.primary),
        user_ids={k: capped(c) for k, c in cert.user_ids.items()},
        user_attributes={k: capped(c) for k, c in cert.user_attributes.items()},
        subkeys={k: capped(c) for k, c in cert.subkeys.items()},
    )


def _cap(signatures: Iterable[Packet], primary: PublicKey, cap: int) -> frozenset[Packet]:
    own: list[Packet] = []
    others: list[Packet] = []
    for packet in signatures:
        header = peek_signature(packet.body)
        # Stored signatures always parse; an unparsable one is capped rather than trusted.
        (own if header is not None and claims_self(header, primary) else others).append(packet)
    return frozenset(own) | smallest(others, cap)


def smallest(signatures: Iterable[Packet], cap: int) -> frozenset[Packet]:
    """The `cap` signatures with the smallest SHA-256 of their encoding: a total order, so
    smallest(a ∪ b) == smallest(smallest(a) ∪ smallest(b)) and the cap commutes with merge."""
    unique = frozenset(signatures)
    if len(unique) <= cap:
        return unique
    return frozenset(sorted(unique, key=lambda p: hashlib.sha256(p.encode()).digest())[:cap])


class _Checker:
    """Classifies the signatures of one key; remembers why a verification was impossible."""

    def __init__(self, primary: PublicKey, known_valid: KnownValid, max_failures: int) -> None:
        self.primary = primary
        self.known_valid = known_valid
        self.unsupported: str | None = None
        self.failures = 0
        self.max_failures = max_failures
        # Self-signatures that failed on the component they were filed under (relocate.py).
        self.strays: dict[Packet, Stray] = {}

    def check(
        self,
        signatures: Iterable[Packet],
        target: Packet | None,
        self_types: Collection[int],
        third_party_types: Collection[int],
        cap: int,
    ) -> tuple[frozenset[Packet], set[int]]:
        """Kept signatures on `target` (None: the primary), and the types of valid self-sigs."""
        own: list[Packet] = []
        others: list[Packet] = []
        valid_types: set[int] = set()
        for packet in signatures:
            header = peek_signature(packet.body)
            if header is None:
                continue  # cannot be parsed
            if not claims_self(header, self.primary):
                if header.sig_type in third_party_types:
                    others.append(packet)
            elif header.sig_type in self_types and self._valid(packet, target):
                own.append(packet)
                valid_types.add(header.sig_type)
        return frozenset(own) | smallest(others, cap), valid_types

    def _valid(self, packet: Packet, target: Packet | None) -> bool:
        if (target, packet) in self.known_valid:
            return True
        try:
            sig = parse_signature(packet.body)
            valid = self.verify(sig, target)
        except UnsupportedAlgorithm as exc:
            self.unsupported = self.unsupported or str(exc)
            return False
        except MalformedPacket:
            return False  # unreachable while peek_signature mirrors parse_signature
        if not valid and target is not None:
            _, filed = self.strays.get(packet, (sig, frozenset()))
            self.strays[packet] = (sig, filed | {target})
        return valid

    def verify(self, sig: Signature, target: Packet | None) -> bool:
        """verify_binding, counting failures against the bad_self_signatures budget."""
        valid = verify_binding(self.primary, sig, target)
        if not valid:
            self.failures += 1
            if self.failures > self.max_failures:
                raise KeyRejected(
                    f"more than {self.max_failures} self-signatures fail verification "
                    "(limit bad_self_signatures); the upload looks forged",
                    fingerprint_hex(self.primary),
                )
        return valid


def _place_strays(
    checker: _Checker,
    components: Collection[Packet],
    groups: dict[int, dict[bytes, Component]],
    unbound: list[Packet],
    unbound_sigs: dict[int, frozenset[Packet]],
    limits: Limits,
) -> list[Packet]:
    """Move misfiled self-signatures into `groups` at the component they bind (relocate.py);
    return `unbound` less the components that got their first valid self-signature."""
    placed = {sig for group in groups.values() for c in group.values() for sig in c.signatures}
    moved = relocate(
        checker.primary, checker.strays, components, placed, limits.relocation_hashes,
        checker.verify,
    )
    bound: set[int] = set()  # by id(): relocate returns the very packets it was given
    for sig, target in moved.items():
        group = groups[target.tag]
        current = group.get(target.body)
        if current is None:
            current = Component(target, unbound_sigs.get(id(target), frozenset()))
            bound.add(id(target))
        group[target.body] = Component(target, current.signatures | {sig})
    return [packet for packet in unbound if id(packet) not in bound] if bound else unbound


def encoded_size(packet: Packet) -> int:
    """len(packet.encode()) without building it (RFC 9580 §4.2.1 new-format header)."""
    length = len(packet.body)
    return length + (2 if length < 192 else 3 if length < 8384 else 6)


def _normalise(key: RawKey, limits: Limits, known_valid: KnownValid) -> Certificate:
    fingerprint = fingerprint_hex(key.primary)
    checker = _Checker(key.primary, known_valid, limits.bad_self_signatures)
    cap = limits.sigs_per_component

    primary_sigs, primary_valid = checker.check(
        key.direct, None, _PRIMARY_SELF, _PRIMARY_THIRD_PARTY, cap
    )
    groups: dict[int, dict[bytes, Component]] = {tag: {} for tag in _COMPONENT_TAGS}
    # Components without a valid self-signature, and the third-party signatures of those that
    # have any, by id(): kept apart so that a key of many bare user IDs allocates nothing more.
    unbound: list[Packet] = []
    unbound_sigs: dict[int, frozenset[Packet]] = {}
    for packet, raw in key.components.items():
        if packet.tag == Tag.PUBLIC_SUBKEY:
            kept, valid = checker.check(raw.signatures, packet, _SUBKEY_SELF, (), cap)
        else:
            kept, valid = checker.check(raw.signatures, packet, _USER_SIGS, _USER_SIGS, cap)
        if valid:
            groups[packet.tag][packet.body] = Component(packet, kept)
        else:
            unbound.append(packet)
            if kept:
                unbound_sigs[id(packet)] = kept
    if checker.strays:
        unbound = _place_strays(checker, key.components.keys(), groups, unbound, unbound_sigs,
                                limits)
    for packet in unbound:
        key.dropped.append(f"tag {packet.tag} component without a valid self-signature")
        # Third-party certifications that a stored copy's self-signature would keep.
        key.orphans += len(unbound_sigs.get(id(packet), ()))

    if not primary_valid and not any(groups.values()):
        key.orphans += len(primary_sigs)  # all third-party here: no self-signature is valid
        reason = "no valid self-signature"
        if checker.unsupported:
            reason = (
                f"no verifiable self-signature on this v{key.primary.version} key: "
                f"{checker.unsupported}"
            )
        raise KeyRejected(reason, fingerprint)
    cert = Certificate(
        fingerprint=key.primary.fingerprint,
        primary=Component(key.primary_packet, primary_sigs),
        user_ids=groups[Tag.USER_ID],
        user_attributes=groups[Tag.USER_ATTRIBUTE],
        subkeys=groups[Tag.PUBLIC_SUBKEY],
    )
    size = sum(encoded_size(p) for p in cert.packets())
    if size > limits.key_bytes:
        raise KeyRejected(
            f"key is {size} bytes after normalisation, over the key_bytes limit "
            f"({limits.key_bytes}); it is refused, not truncated",
            fingerprint,
        )
    if key.dropped:
        log.debug(
            "event=key_normalised fp=%s dropped=%d first=%r",
            fingerprint, len(key.dropped), key.dropped[0],
        )
    return cert
