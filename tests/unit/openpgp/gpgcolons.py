"""Reading `gpg --with-colons` listings and comparing them with meshkp's view of the same keys."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view
from meshkp.openpgp.keyview import KeyView
from meshkp.openpgp.pubkey import parse_public_key
from tests.gpgtools import gnupg_home, gpg

# gpg escapes control bytes, ':' and '\\' in colon listings (es_write_sanitized).
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[nrfvb0])")
_NAMED = {b"n": b"\n", b"r": b"\r", b"f": b"\f", b"v": b"\v", b"b": b"\b", b"0": b"\0"}


def unescape(text: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        return bytes([int(code[1:], 16)]) if code[:1] == b"x" else _NAMED[code]

    return _ESCAPE.sub(one, text)


@dataclass
class GpgKey:
    """One `pub` record with its `uid` and `sub` records (fields split on ':')."""

    pub: list[bytes]
    uids: list[list[bytes]] = field(default_factory=list)  # in gpg's order: primary first
    subkeys: dict[str, list[bytes]] = field(default_factory=dict)  # by fingerprint (hex, upper)

    def user_ids(self) -> frozenset[bytes]:
        """The user IDs gpg shows, less those with NUL bytes, which meshkp drops on purpose."""
        return frozenset(uid for uid in (unescape(u[9]) for u in self.uids) if b"\0" not in uid)


def show_keys(path: Path) -> dict[str, GpgKey]:
    """`gpg --show-keys --with-colons` of a key file, by primary fingerprint (hex, upper)."""
    with gnupg_home() as home:
        listing = gpg(home, "--show-keys", "--with-colons", "--fixed-list-mode", str(path))
    return parse(listing.stdout)


def parse(listing: bytes) -> dict[str, GpgKey]:
    keys: dict[str, GpgKey] = {}
    current: GpgKey | None = None
    pending: list[bytes] | None = None  # the pub/sub record waiting for its fpr record
    for line in listing.splitlines():
        fields = line.split(b":")
        kind = fields[0]
        if kind == b"pub":
            current = GpgKey(fields)
            pending = fields
        elif kind == b"sub" and current is not None:
            pending = fields
        elif kind == b"fpr" and current is not None and pending is not None:
            fingerprint = fields[9].decode()
            if pending is current.pub:
                keys[fingerprint] = current
            else:
                current.subkeys[fingerprint] = pending
            pending = None
        elif kind == b"uid" and current is not None:
            current.uids.append(fields)
    return keys


def _int(field_value: bytes) -> int | None:
    return int(field_value) if field_value else None


def _date_and_size_differences(
    what: str, row: list[bytes], created: int, expires: int | None, bits: int
) -> list[str]:
    """Where a pub/sub colon record's creation, expiry and size (fields 6, 7, 3) differ from ours."""
    return [
        f"{what} {name}: gpg {theirs}, ours {ours}"
        for name, theirs, ours in (
            ("created", _int(row[5]), created),
            ("expires", _int(row[6]), expires),
            ("bits", _int(row[2]), bits),
        )
        if theirs != ours
    ]


def structure_differences(cert: Certificate, seen: GpgKey) -> list[str]:
    """Differences in user IDs and subkeys between a certificate and gpg's listing of it."""
    problems = []
    if frozenset(cert.user_ids) != seen.user_ids():
        problems.append(f"user IDs: ours-only {set(cert.user_ids) - seen.user_ids()}, "
                        f"gpg-only {seen.user_ids() - set(cert.user_ids)}")
    subkeys = {parse_public_key(c.packet.body).fingerprint.hex().upper() for c in cert.subkeys.values()}
    if subkeys != set(seen.subkeys):
        problems.append(f"subkeys: ours {sorted(subkeys)}, gpg {sorted(seen.subkeys)}")
    return problems


def index_differences(info: KeyView, seen: GpgKey) -> list[str]:
    """Differences between key_view and what gpg shows (validity, dates, bits, primary UID).

    gpg marks every user ID and subkey of a revoked key as revoked, and shows no creation
    date for a revoked user ID; KeyView keeps each component's own state.
    """
    problems = []
    pub = seen.pub
    if (pub[1] == b"r") != info.revoked:
        problems.append(f"revoked: gpg {pub[1]!r}, ours {info.revocation}")
    problems += _date_and_size_differences("key", pub, info.created, info.expires, info.bits)
    by_text = {unescape(u[9]): u for u in seen.uids}
    for uid in info.user_ids:
        theirs_uid = by_text.get(uid.user_id)
        if theirs_uid is None:
            problems.append(f"user ID {uid.user_id!r} not shown by gpg")
            continue
        gpg_revoked = theirs_uid[1] == b"r"
        if gpg_revoked != (uid.revoked or info.revoked):
            problems.append(f"user ID {uid.user_id!r} revoked: gpg {gpg_revoked}, ours {uid.revoked}")
        if not gpg_revoked and _int(theirs_uid[5]) != uid.created:
            problems.append(f"user ID {uid.user_id!r} created: gpg {theirs_uid[5]!r}, ours {uid.created}")
        if _int(theirs_uid[6]) != uid.expires:
            problems.append(f"user ID {uid.user_id!r} expires: gpg {theirs_uid[6]!r}, ours {uid.expires}")
    shown = [u for u in seen.uids if b"\0" not in unescape(u[9])]
    if shown and info.user_ids and unescape(shown[0][9]) != info.user_ids[0].user_id:
        problems.append(f"primary user ID: gpg {unescape(shown[0][9])!r}, ours {info.user_ids[0].user_id!r}")
    for sub in info.subkeys:
        theirs_sub = seen.subkeys.get(sub.fingerprint.hex().upper())
        if theirs_sub is None:
            problems.append(f"subkey {sub.key_id.hex()} not shown by gpg")
            continue
        # 'i' (invalid) is gpg's verdict on some subkeys of revoked keys; not a revocation fact.
        if theirs_sub[1] != b"i" and (theirs_sub[1] == b"r") != (sub.revoked or info.revoked):
            problems.append(f"subkey {sub.key_id.hex()} revoked: gpg {theirs_sub[1]!r}, ours {sub.revoked}")
        problems += _date_and_size_differences(
            f"subkey {sub.key_id.hex()}", theirs_sub, sub.created, sub.expires, sub.bits
        )
    return problems


def all_differences(certs: Iterable[Certificate], listing: dict[str, GpgKey]) -> dict[str, list[str]]:
    """fingerprint -> differences, for every certificate that differs from gpg's listing."""
    found = {}
    for cert in certs:
        fingerprint = cert.fingerprint.hex().upper()
        seen = listing.get(fingerprint)
        if seen is None:
            found[fingerprint] = ["not listed by gpg"]
            continue
        problems = structure_differences(cert, seen) + index_differences(key_view(cert), seen)
        if problems:
            found[fingerprint] = problems
    return found
