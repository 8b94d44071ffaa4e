"""What op=index and op=vindex show of a key: the one model of a key's index view.

`meshkp.openpgp.index.key_view` derives it from a normalised certificate (the rules are
there). The key service caches it with the stored key, and the renderers of the HTTP
layer (meshkp/http/mr.py, html.py) only format it. It lives here, in the lowest layer that
needs it, because the layer that produces it may only import down.

Every fact comes from the packets alone (no clock): whether a key or user ID has expired
is asked with `expired(now)`, and `changes_after(now)` says when that answer next flips.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshkp.openpgp.keywords import email_of, user_id_text
from meshkp.openpgp.pubkey import PublicKeyAlgorithm

SOFT_REVOCATION_REASONS = frozenset({1, 3})  # key superseded, key retired (RFC 9580 §5.2.3.31)


@dataclass(frozen=True, slots=True)
class Revocation:
    """A verified revocation self-signature of the key."""

    created: int
    reason_code: int | None  # None: no reason subpacket
    reason_text: str

    @property
    def hard(self) -> bool:
        """Hard unless the reason says the key was superseded or retired (HIP-5: a hard
        revocation makes the key invalid for all time)."""
        return self.reason_code not in SOFT_REVOCATION_REASONS


@dataclass(frozen=True, slots=True)
class SignatureView:
    """One signature on a component, for op=vindex."""

    sig_type: int
    issuer: bytes | None  # 8-byte key ID (or None when the signature names no issuer)
    created: int
    self_signature: bool


@dataclass(frozen=True, slots=True)
class UserIdView:
    """A user ID, described by its newest self-certification."""

    user_id: bytes  # the raw bytes of the user ID packet (UTF-8, or whatever the key holds)
    created: int | None  # of the newest self-certification; None if only a revocation is left
    expires: int | None  # absolute Unix time, None = never
    revoked: bool  # the user ID's own state: a revoked key's user IDs are not marked
    primary: bool = False
    signatures: tuple[SignatureView, ...] = ()  # oldest first

    @property
    def text(self) -> str:
        return user_id_text(self.user_id)

    @property
    def email(self) -> str | None:
        return email_of(self.text)


@dataclass(frozen=True, slots=True)
class SubkeyView:
    fingerprint: bytes
    key_id: bytes
    algorithm: int
    bits: int
    created: int
    expires: int | None  # absolute Unix time, None = never
    revoked: bool


@dataclass(frozen=True, slots=True)
class KeyView:
    """A primary key with its user IDs and subkeys, as the HKP index shows it."""

    fingerprint: bytes
    key_id: bytes
    version: int
    algorithm: int
    bits: int
    created: int
    expires: int | None  # absolute Unix time, None = never
    revocation: Revocation | None  # the hardest, earliest one
    user_ids: tuple[UserIdView, ...]  # primary first, then by user ID bytes
    subkeys: tuple[SubkeyView, ...] = ()  # by creation, then fingerprint
    signatures: tuple[SignatureView, ...] = ()  # on the primary: direct-key and revocations
    user_attributes: int = 0

    @property
    def revoked(self) -> bool:
        return self.revocation is not None

    @property
    def hard_revoked(self) -> bool:
        return self.revocation is not None and self.revocation.hard

    @property
    def algorithm_name(self) -> str:
        try:
            return PublicKeyAlgorithm(self.algorithm).name
        except ValueError:
            return f"algo{self.algorithm}"

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def changes_after(self, now: float) -> float:
        """The next time an expiry flag of this view flips; +inf if none will."""
        times = [self.expires] + [uid.expires for uid in self.user_ids]
        future = [t for t in times if t is not None and t > now]
        return float(min(future)) if future else float("inf")
