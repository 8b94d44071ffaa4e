"""How user IDs and search strings become keywords, and where the e-mail of a user ID is.

One tokeniser serves both sides, so a search finds what was indexed:

- words: maximal runs of letters and digits (any script), lowercased;
- hyphenated words as a whole as well ("steven-12345" and "steven", "12345");
- e-mail addresses as a whole, and their local part and domain.

Keywords are cut to `keyword_bytes` UTF-8 bytes (at a character boundary) on both sides.
The order is most specific first (e-mails, then longer tokens), which a search can use
to look up the most selective term first.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
_HYPHENATED = re.compile(r"[^\W_]+(?:-[^\W_]+)+")
# An address in angle brackets ("Name <a@b>", RFC 9580 §5.11 convention) or a bare one.
_BRACKETED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_BARE = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_IN_TEXT = re.compile(r"[^<>\s@(),;:\"']+@[^<>\s@(),;:\"']+")


def user_id_text(user_id: bytes) -> str:
    """A user ID as text: UTF-8 (RFC 9580 §5.11), else Latin-1 (what old PGP versions wrote,
    so "M\xfcller" is still found as "müller")."""
    try:
        return user_id.decode("utf-8")
    except UnicodeDecodeError:
        return user_id.decode("latin-1")


def email_of(text: str) -> str | None:
    """The lowercased e-mail of a user ID: the last <addr>, or the whole ID if it is one."""
    found: list[str] = _BRACKETED.findall(text)
    if found:
        return found[-1].lower()
    stripped = text.strip()
    if _BARE.match(stripped):
        return stripped.lower()
    return None


def tokens(text: str, keyword_bytes: int, email: str | None = None) -> list[str]:
    """Keywords of a text, most specific first, deduplicated, each at most keyword_bytes."""
    text = text.lower()
    emails = [email] if email else []
    emails += [m for m in _IN_TEXT.findall(text) if m not in emails]
    found: list[str] = []
    for address in emails:
        local, _, domain = address.rpartition("@")
        found += [address, local, domain]
    found += sorted(set(_HYPHENATED.findall(text)), key=lambda w: (-len(w), w))
    found += sorted(set(_WORD.findall(text)), key=lambda w: (-len(w), w))
    seen: set[str] = set()
    result = []
    for word in found:
        word = _cut(word, keyword_bytes)
        if word and word not in seen:
            seen.add(word)
            result.append(word)
    return result


def _cut(word: str, limit: int) -> str:
    encoded = word.encode("utf-8")
    if len(encoded) <= limit:
        return word
    return encoded[:limit].decode("utf-8", errors="ignore")
