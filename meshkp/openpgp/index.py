"""HKP index data of a normalised certificate: key and user ID facts, and store index terms.

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
  `KeyInfo.expires`). It is revoked by a certification revocation (0x30) at least as new
  as that certification. `revoked` is the user ID's own state: a revoked key's user IDs
  are not marked (GnuPG shows them as revoked because the key is).
- Primary user ID (GnuPG's rule): among user IDs not revoked, the one whose newest
  self-certification carries the primary flag, newest such first; if none is flagged, the
  one with the newest self-certification; ties broken by the user ID bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.keywords import email_of, tokens, user_id_text
from meshkp.openpgp.normalise import claims_self
from meshkp.openpgp.pubkey import PublicKey, parse_public_key
from meshkp.openpgp.signature import CERTIFICATIONS, Signature, SigType, Subpacket, parse_signature
from meshkp.openpgp.sigpeek import peek_signature
from meshkp.store.protocol import IndexKind, IndexTerm

SOFT_REVOCATION_REASONS = frozenset({1, 3})  # key superseded, key retired (RFC 9580 §5.2.3.31)


@dataclass(frozen=True, slots=True)
class Revocation:
    """A verified revocation self-signature."""

    created: int
    reason_code: int | None  # None: no reason subpacket
    reason_text: str

    @property
    def hard(self) -> bool:
        """Hard unless the reason says the key was superseded or retired."""
        return self.reason_code not in SOFT_REVOCATION_REASONS


@dataclass(frozen=True, slots=True)
class UserIdInfo:
    user_id: bytes
    created: int | None  # of the newest self-certification; None if only a revocation is left
    expires: int | None  # absolute Unix time, None = never
    revoked: bool
    primary: bool

    @property
    def text(self) -> str:
        return user_id_text(self.user_id)

    @property
    def email(self) -> str | None:
        return email_of(self.text)


@dataclass(frozen=True, slots=True)
class SubkeyInfo:
    fingerprint: bytes
    key_id: bytes
    algorithm: int
    bits: int
    curve: str | None
    created: int
    expires: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class KeyInfo:
    fingerprint: bytes
    key_id: bytes
    version: int
    algorithm: int
    algorithm_name: str
    bits: int
    curve: str | None
    created: int
    expires: int | None  # absolute Unix time, None = never
    revocation: Revocation | None  # the hardest, earliest one
    user_ids: tuple[UserIdInfo, ...]  # primary first, then by user ID bytes
    user_attributes: int
    subkeys: tuple[SubkeyInfo, ...]  # by creation, then fingerprint

    @property
    def revoked(self) -> bool:
        return self.revocation is not None

    @property
    def hard_revoked(self) -> bool:
        return self.revocation is not None and self.revocation.hard

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


def key_info(cert: Certificate) -> KeyInfo:
    """Everything op=index/vindex shows about a normalised certificate."""
    primary = parse_public_key(cert.primary.packet.body)
    described = _describe_user_ids(cert, primary)
    return KeyInfo(
        fingerprint=primary.fingerprint,
        key_id=primary.key_id,
        version=primary.version,
        algorithm=primary.algorithm,
        algorithm_name=primary.algorithm_name,
        bits=primary.bits,
        curve=primary.curve,
        created=primary.created,
        expires=_key_expiry(cert, primary, described),
        revocation=_revocation(_self_sigs(cert.primary, primary, {SigType.KEY_REVOCATION})),
        user_ids=_user_id_infos(described),
        user_attributes=len(cert.user_attributes),
        subkeys=tuple(
            sorted(
                (_subkey(c, primary) for c in cert.subkeys.values()),
                key=lambda s: (s.created, s.fingerprint),
            )
        ),
    )


def index_terms(cert: Certificate, limits: Limits | None = None) -> frozenset[IndexTerm]:
    """The store index terms of a certificate: key IDs of all keys, e-mails, keywords."""
    limits = limits or Limits()
    terms: set[IndexTerm] = set()
    for body in (cert.primary.packet.body, *(c.packet.body for c in cert.subkeys.values())):
        key = parse_public_key(body)
        terms.add((IndexKind.FINGERPRINT, key.fingerprint))
        terms.add((IndexKind.KEY_ID64, key.key_id))
        terms.add((IndexKind.KEY_ID32, key.short_id))
    words_of: dict[bytes, list[str]] = {}
    for user_id in cert.user_ids:
        text = user_id_text(user_id)
        email = email_of(text)
        if email:
            terms.add((IndexKind.EMAIL, email.encode("utf-8")))
        words_of[user_id] = tokens(text, limits.keyword_bytes, email)
    keywords = {word for words in words_of.values() for word in words}
    if len(keywords) > limits.keywords_per_key:
        keywords = _capped_keywords(cert, words_of, limits.keywords_per_key)
    terms.update((IndexKind.KEYWORD, word.encode("utf-8")) for word in keywords)
    return frozenset(terms)


def _capped_keywords(cert: Certificate, words_of: dict[bytes, list[str]], cap: int) -> set[str]:
    """The first `cap` distinct keywords, primary user ID's first (then by user ID bytes).

    Only a key over the cap needs the order, and finding the primary user ID parses every
    self-signature (the dearest part of indexing), so index_terms calls this only then.
    """
    seen: set[str] = set()
    for info in key_info(cert).user_ids:
        for word in words_of[info.user_id]:
            if len(seen) >= cap:
                return seen
            seen.add(word)
    return seen


def keyword_terms(query: str, limits: Limits | None = None) -> list[bytes]:
    """KEYWORD terms of a free-text search, most selective first, tokenised like user IDs."""
    limits = limits or Limits()
    return [w.encode("utf-8") for w in tokens(query, limits.keyword_bytes)]


def email_term(address: str) -> bytes:
    """The EMAIL index term of an address, as index_terms writes it."""
    return address.strip().lower().encode("utf-8")


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


def _user_id_infos(described: list[_Described]) -> tuple[UserIdInfo, ...]:
    live = [d for d in described if not d.revoked and d.newest is not None]
    flagged = [d for d in live if d.newest is not None and d.newest.is_primary_user_id]
    chosen = max(flagged or live, key=lambda d: d.rank, default=None)
    infos = [
        UserIdInfo(
            user_id=d.body,
            created=d.newest.created if d.newest else None,
            expires=d.expires,
            revoked=d.revoked,
            primary=chosen is not None and d.body == chosen.body,
        )
        for d in described
    ]
    infos.sort(key=lambda u: (not u.primary, u.user_id))
    return tuple(infos)


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


def _subkey(component: Component, primary: PublicKey) -> SubkeyInfo:
    subkey = parse_public_key(component.packet.body)
    sigs = _self_sigs(component, primary, {SigType.SUBKEY_BINDING, SigType.SUBKEY_REVOCATION})
    bindings = [s for s in sigs if s.sig_type == SigType.SUBKEY_BINDING]
    newest = bindings[-1] if bindings else None
    return SubkeyInfo(
        fingerprint=subkey.fingerprint,
        key_id=subkey.key_id,
        algorithm=subkey.algorithm,
        bits=subkey.bits,
        curve=subkey.curve,
        created=subkey.created,
        expires=_expiry(subkey.created, newest.key_expiration_seconds) if newest else None,
        revoked=any(s.sig_type == SigType.SUBKEY_REVOCATION for s in sigs),
    )
