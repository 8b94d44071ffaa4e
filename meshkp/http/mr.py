"""The machine-readable index of HKP (draft-shaw-openpgp-hkp §5.2, `options=mr`).

    info:1:<count>
    pub:<fingerprint or key ID>:<algo>:<bits>:<created>:<expires>:<flags>
    uid:<escaped user ID>:<created>:<expires>:<flags>

Empty fields are allowed (gpg's parse_keyrec treats them as "unknown"). Flags: r = revoked,
e = expired (d, disabled, is never set). In user IDs, ':' and '%' and every byte that is not
printable 7-bit ASCII are %-escaped (§5.2); gpg's parser undoes any %XX. Lines end in LF,
including the last one.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshkp.openpgp.keyview import KeyView, UserIdView

# Printable 7-bit ASCII except ':' and '%' passes through; everything else is %XX. Control
# bytes (CR, LF) must be escaped too, or a user ID could forge extra index lines.
_ESCAPE = tuple(
    chr(b) if 0x20 <= b < 0x7F and b not in (0x3A, 0x25) else f"%{b:02X}" for b in range(256)
)


def escape_uid(text: bytes) -> str:
    """%-escape a user ID for a `uid:` line."""
    table = _ESCAPE
    return "".join([table[b] for b in text])


def key_field(view: KeyView) -> str:
    """The second field of `pub:`: the fingerprint, or the 64-bit key ID for v3 keys.

    §5.2: v3 fingerprints (MD5) cannot be turned back into a key ID, so v3 keys are listed by
    key ID; v4 (40 hex digits) and v6 (64) by fingerprint, which gpg recognises.
    """
    if view.version < 4:
        return view.key_id.hex().upper()
    return view.fingerprint.hex().upper()


def _time(value: int | None) -> str:
    return str(value) if value else ""


def _flags(revoked: bool, expires: int | None, now: float) -> str:
    flags = "r" if revoked else ""
    if expires is not None and expires <= now:
        flags += "e"
    return flags


def pub_line(view: KeyView, now: float) -> str:
    return (
        f"pub:{key_field(view)}:{view.algorithm}:{view.bits or ''}:{_time(view.created)}:"
        f"{_time(view.expires)}:{_flags(view.revoked, view.expires, now)}\n"
    )


def uid_line(uid: UserIdView, now: float) -> str:
    return (
        f"uid:{escape_uid(uid.user_id)}:{_time(uid.created)}:{_time(uid.expires)}:"
        f"{_flags(uid.revoked, uid.expires, now)}\n"
    )


def key_block(view: KeyView, now: float) -> bytes:
    """The `pub:` line and the `uid:` lines of one key."""
    lines = [pub_line(view, now)]
    lines.extend(uid_line(uid, now) for uid in view.user_ids)
    return "".join(lines).encode("ascii")


def index_document(blocks: Iterable[bytes], count: int) -> bytes:
    """The whole reply: the info line, then the blocks (already ending in LF)."""
    return b"".join([f"info:1:{count}\n".encode("ascii"), *blocks])
