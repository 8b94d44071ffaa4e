"""The index view of a normalised certificate: the rules that derive `KeyView` from packets.

Input is always a normalised `Certificate`, so every signature that names the primary as
issuer (or names no issuer) is a verified self-signature; nothing is verified again here.
All facts are derived from the packets alone (no clock): "expired" is for the caller to
decide from `expires`.

- Key expiry: from the newest of the direct-key self-signatures and the self-certifications
  of the primary user ID, creation + key-expiration subpacket (RFC 9580 §5.2.3.13); v3 keys
  from their validity days.
- Revocation: a key revocation self-signature (0x20). Its reason (subpacket 29, RFC 9580
  §5.2.3.31) 1 "superseded" or 3 "retired" is soft; none, 0, 2 "compromised" and any
  other code is hard (the key must be treated as invalid for all time, HIP-5).
- A user ID is described by its newest self-certification: its creation, and its expiry
  from the signature expiration subpacket (as GnuPG shows it; the key's own expiry is
  `KeyView.expires`). It is revoked by a certification revocation (0x30) at least as new
  as that certification. `revoked` is the user ID's own state: a revoked key's user IDs
  are not marked (GnuPG shows them as revoked because the key is).
- Primary user ID (GnuPG's rule): among user IDs not revoked, the one whose newest
  self-certification carries the primary flag, newest such first; if none is flagged, the
  one with the newest self-certification; ties broken by the user ID bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.keyview import KeyView, Revocation, SignatureView, SubkeyView, UserIdView
from meshkp.openpgp.normalise import claims_self
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import CERTIFICATIONS, Signature, SigType, Subpacket, parse_signature
from meshkp.openpgp.sigpeek import peek_signature


def key_view(cert: Certificate) -> KeyView:
    """Everything op=index/vindex shows about a normalised certificate."""
    primary = parse_public_key(cert.primary.packet.body)
    described = _describe_user_ids(cert, primary)
    chosen = _primary_user_id(described)
    user_ids = sorted(
        (_user_id_view(d, cert.user_ids[d.body], primary, chosen) for d in described),
        key=lambda u: _index_order(u.user_id, chosen),
    )
    return KeyView(
        fingerprint=primary.fingerprint,
        key_id=primary.key_id,
        version=primary.version,
        algorithm=primary.algorithm,
        bits=primary.bits,
        created=primary.created,
        expires=_key_expiry(cert, primary, described),
        revocation=_revocation(_self_sigs(cert.primary, primary, {SigType.KEY_REVOCATION})),
        user_ids=tuple(user_ids),
        subkeys=tuple(
            sorted(
                (_subkey(c, primary) for c in cert.subkeys.values()),
                key=lambda s: (s.created, s.fingerprint),
            )
        ),
        signatures=_signatures(cert.primary, primary),
        user_attributes=len(cert.user_attributes),
    )


def user_ids_in_index_order(cert: Certificate) -> list[bytes]:
    """The user IDs in the order `key_view` lists them (primary first, then by bytes).

    Cheaper than `key_view(cert).user_ids`: it parses only the self-signatures.
    """
    primary = parse_public_key(cert.primary.packet.body)
    chosen = _primary_user_id(_describe_user_ids(cert, primary))
    return sorted(cert.user_ids, key=lambda body: _index_order(body, chosen))


def _index_order(user_id: bytes, primary: bytes | None) -> tuple[bool, bytes]:
    return user_id != primary, user_id


def _self_sigs(
    component: Component, primary: PublicKey, types: Iterable[int]
) -> list[Signature]:
    """Self-signatures of the given types on a component, oldest first."""
    wanted = frozenset(types)
    found = []
    for packet in component.signatures:
        header = peek_signature(packet.body)
        if header and header.sig_type in wanted and claims_self(header, primary):
            found.append(parse_signature(packet.body))
    found.sort(key=lambda s: (s.created, s.hashed_prefix))
    return found


def _signatures(component: Component, primary: PublicKey) -> tuple[SignatureView, ...]:
    """Every signature of a component for op=vindex, oldest first."""
    views = []
    for packet in component.ordered_signatures():
        sig = parse_signature(packet.body)
        issuer = sig.issuer_key_id
        views.append(SignatureView(sig.sig_type, issuer, sig.created, claims_self(sig, primary)))
    views.sort(key=lambda v: (v.created, v.issuer or b""))
    return tuple(views)


def _revocation(revocations: list[Signature]) -> Revocation | None:
    found = [_as_revocation(sig) for sig in revocations]
    if not found:
        return None
    hard = [r for r in found if r.hard]
    return (hard or found)[0]


def _as_revocation(sig: Signature) -> Revocation:
    value = sig.hashed_value(Subpacket.REVOCATION_REASON)
    if not value:
        return Revocation(sig.created, None, "")
    return Revocation(sig.created, value[0], value[1:].decode("utf-8", errors="replace"))


def _expiry(base: int, seconds: int | None) -> int | None:
    return base + seconds if seconds else None


def _describe_user_ids(cert: Certificate, primary: PublicKey) -> list[_Described]:
    described = []
    for body, component in cert.user_ids.items():
        sigs = _self_sigs(component, primary, CERTIFICATIONS | {SigType.CERT_REVOCATION})
        certs = [s for s in sigs if s.sig_type in CERTIFICATIONS]
        newest = certs[-1] if certs else None
        if newest is None:
            # Only a revocation is left (debian-keyring strips revoked user IDs' certifications).
            described.append(_Described(body, None, True, None))
            continue
        revoked = any(
            s.sig_type == SigType.CERT_REVOCATION and s.created >= newest.created for s in sigs
        )
        expires = _expiry(newest.created, newest.expiration_seconds)
        described.append(_Described(body, newest, revoked, expires))
    return described


def _user_id_view(
    described: _Described, component: Component, primary: PublicKey, chosen: bytes | None
) -> UserIdView:
    return UserIdView(
        user_id=described.body,
        created=described.newest.created if described.newest else None,
        expires=described.expires,
        revoked=described.revoked,
        primary=described.body == chosen,
        signatures=_signatures(component, primary),
    )


def _primary_user_id(described: list[_Described]) -> bytes | None:
    live = [d for d in described if not d.revoked and d.newest is not None]
    flagged = [d for d in live if d.newest is not None and d.newest.is_primary_user_id]
    chosen = max(flagged or live, key=lambda d: d.rank, default=None)
    return chosen.body if chosen is not None else None


@dataclass(frozen=True, slots=True)
class _Described:
    body: bytes
    newest: Signature | None  # newest self-certification
    revoked: bool
    expires: int | None

    @property
    def rank(self) -> tuple[int, int, bytes]:
        """Newest certification wins; ties go to the longer, then greater user ID (GnuPG's
        cmp_user_ids), so the choice never depends on packet order."""
        created = self.newest.created if self.newest else -1
        return created, len(self.body), self.body


def _key_expiry(cert: Certificate, primary: PublicKey, user_ids: list[_Described]) -> int | None:
    """GnuPG's rule (getkey.c merge_selfsigs_main): a key expiration in the newest direct-key
    self-signature wins; else the one of the live user ID whose newest self-certification is
    the newest among those that set an expiration."""
    if primary.version < 4:
        return primary.created + primary.expiry_days_v3 * 86400 if primary.expiry_days_v3 else None
    direct = _self_sigs(cert.primary, primary, {SigType.DIRECT_KEY})
    if direct and direct[-1].key_expiration_seconds:
        return _expiry(primary.created, direct[-1].key_expiration_seconds)
    setting = [
        d.newest for d in user_ids
        if d.newest is not None and not d.revoked and d.newest.key_expiration_seconds
    ]
    if not setting:
        return None
    newest = max(setting, key=lambda s: (s.created, s.key_expiration_seconds or 0))
    return _expiry(primary.created, newest.key_expiration_seconds)


def _subkey(component: Component, primary: PublicKey) -> SubkeyView:
    subkey = parse_public_key(component.packet.body)
    sigs = _self_sigs(component, primary, {SigType.SUBKEY_BINDING, SigType.SUBKEY_REVOCATION})
    bindings = [s for s in sigs if s.sig_type == SigType.SUBKEY_BINDING]
    newest = bindings[-1] if bindings else None
    return SubkeyView(
        fingerprint=subkey.fingerprint,
        key_id=subkey.key_id,
        algorithm=subkey.algorithm,
        bits=subkey.bits,
        created=subkey.created,
        expires=_expiry(subkey.created, newest.key_expiration_seconds) if newest else None,
        revoked=any(s.sig_type == SigType.SUBKEY_REVOCATION for s in sigs),
    )
