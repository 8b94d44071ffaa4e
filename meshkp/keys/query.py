"""The HKP `search` variable, classified into index lookups (draft-shaw-openpgp-hkp §3.1.1).

Forms, in the order they are tried:
- `0x` + 8, 16, 40 or 64 hex digits: short key ID, long key ID, v4 or v6 fingerprint
  (32 hex digits, a v3 fingerprint, is looked up as a fingerprint too). 40 or 64 hex digits
  without `0x` are also taken as a fingerprint: no word of a user ID is that long and hex.
- an e-mail address, bare or in angle brackets (`alice@example.org`, `<alice@example.org>`):
  the exact-address index, lowercased. This is what gpg's `--locate-external-keys` sends
  (with `exact=on`) and what `--search-keys alice@example.org` sends (without).
- `exact=on` with any other text: keys with a user ID equal to the text (case-insensitive).
- anything else: free text, the AND of its keywords, at most `Limits.search_keywords`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshkp.errors import InvalidRequest
from meshkp.keys.terms import keyword_terms
from meshkp.limits import Limits
from meshkp.store.protocol import IndexKind, IndexTerm

_HEX = re.compile(r"[0-9A-Fa-f]+")
_KEY_ID_KINDS = {8: IndexKind.KEY_ID32, 16: IndexKind.KEY_ID64, 32: IndexKind.FINGERPRINT,
                 40: IndexKind.FINGERPRINT, 64: IndexKind.FINGERPRINT}
# A mailbox as it appears in user IDs: no whitespace, no brackets, one '@' with text on both
# sides. Deliberately loose (RFC 5322 allows far more); the index holds what the UIDs hold.
_MAILBOX = re.compile(r"^<?([^\s<>@]+@[^\s<>@]+)>?$")
_EMBEDDED_MAILBOX = re.compile(r"<([^\s<>@]+@[^\s<>@]+)>")


@dataclass(frozen=True, slots=True)
class Query:
    """A classified search: the index terms to AND, and the exact user ID to filter by, if any."""

    text: str
    terms: tuple[IndexTerm, ...]
    exact_uid: str | None = None

    @property
    def kind(self) -> IndexKind:
        """The index of the first term (KEYWORD for free text)."""
        return self.terms[0][0]

    @property
    def by_key_id(self) -> bool:
        return self.kind in (IndexKind.KEY_ID32, IndexKind.KEY_ID64, IndexKind.FINGERPRINT)


def parse_query(search: str | None, exact: bool, limits: Limits) -> Query:
    """Classify an HKP search string; raise InvalidRequest saying what is wrong with it."""
    if search is None:
        raise InvalidRequest("missing the 'search' variable: add search=<key ID, e-mail or words>")
    text = search.strip()
    if not text:
        raise InvalidRequest("the 'search' variable is empty")
    if len(text) > limits.search_chars:
        raise InvalidRequest(
            f"search of {len(text)} characters exceeds the limit of {limits.search_chars} "
            "(config limits.search_chars)"
        )
    if text[:2] in ("0x", "0X"):
        return _key_id_query(text, text[2:])
    if len(text) in (40, 64) and _is_hex(text):
        return _key_id_query(text, text)
    mailbox = _MAILBOX.match(text)
    if mailbox:
        return Query(text, ((IndexKind.EMAIL, mailbox.group(1).lower().encode()),))
    if exact:
        return _exact_uid_query(text, limits)
    return _keyword_query(text, limits)


def _is_hex(digits: str) -> bool:
    return _HEX.fullmatch(digits) is not None


def _key_id_query(text: str, digits: str) -> Query:
    kind = _KEY_ID_KINDS.get(len(digits))
    if kind is None or not _is_hex(digits):
        raise InvalidRequest(
            f"'{text}' is not a key ID: after 0x give 8, 16, 40 or 64 hex digits "
            "(short or long key ID, v4 or v6 fingerprint)"
        )
    return Query(text, ((kind, bytes.fromhex(digits)),))


def _exact_uid_query(text: str, limits: Limits) -> Query:
    embedded = _EMBEDDED_MAILBOX.search(text)
    if embedded:
        term: IndexTerm = (IndexKind.EMAIL, embedded.group(1).lower().encode())
        return Query(text, (term,), exact_uid=text)
    keyword = _keyword_query(text, limits)
    return Query(text, keyword.terms, exact_uid=text)


def _keyword_query(text: str, limits: Limits) -> Query:
    words = list(dict.fromkeys(keyword_terms(text, limits)))
    if not words:
        raise InvalidRequest(
            f"search '{text}' has no searchable words; search by key ID (0x...), "
            "e-mail address, or name"
        )
    if len(words) > limits.search_keywords:
        raise InvalidRequest(
            f"search has {len(words)} words; at most {limits.search_keywords} are combined "
            "(config limits.search_keywords), use fewer"
        )
    return Query(text, tuple((IndexKind.KEYWORD, word) for word in words))
