"""What op=index and op=vindex show of a key: a plain snapshot, independent of the OpenPGP layer.

Built once per stored state by `meshkp.keys.service` from meshkp.openpgp.index data and cached
with the key; renderers (meshkp/http/mr.py, html.py) only format it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignatureView:
    """One signature on a component, for op=vindex."""

    sig_type: int
    issuer: bytes | None  # 8-byte key ID (or None when the signature names no issuer)
    created: int
    self_signature: bool


@dataclass(frozen=True, slots=True)
class UserIdView:
    """A user ID with the data of its newest valid self-signature."""

    text: bytes  # raw UTF-8 (or whatever the key holds) bytes of the user ID packet
    created: int | None
    expires: int | None  # absolute Unix time, None = never
    revoked: bool
    signatures: tuple[SignatureView, ...] = ()


@dataclass(frozen=True, slots=True)
class SubkeyView:
    fingerprint: bytes
    key_id: bytes
    algorithm: int
    bits: int
    created: int
    expires: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class KeyView:
    """A primary key with its user IDs and subkeys, as the HKP index shows it."""

    fingerprint: bytes
    version: int
    key_id: bytes
    algorithm: int
    bits: int
    created: int
    expires: int | None
    revoked: bool
    user_ids: tuple[UserIdView, ...]
    subkeys: tuple[SubkeyView, ...] = ()
    signatures: tuple[SignatureView, ...] = ()  # direct-key and revocation signatures
    user_attributes: int = 0

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def changes_after(self, now: float) -> float:
        """The next time an expiry flag of this view flips; +inf if none will."""
        times = [self.expires] + [uid.expires for uid in self.user_ids]
        future = [t for t in times if t is not None and t > now]
        return float(min(future)) if future else float("inf")
