"""The store's index terms of a key, and the terms a search or a bare revocation looks up.

A key is found by the fingerprints and key IDs of its primary and subkeys, the e-mail of
each user ID and the keywords of its user IDs (meshkp.openpgp.keywords tokenises both the
user IDs and a search, so a search finds what was indexed). The OpenPGP layer says what a
key holds; this module says which store index each fact goes into.
"""

from __future__ import annotations

from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import user_ids_in_index_order
from meshkp.openpgp.keywords import email_of, tokens, user_id_text
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.revocation import RevocationCertificate
from meshkp.store.protocol import IndexKind, IndexTerm


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
    for user_id in user_ids_in_index_order(cert):
        for word in words_of[user_id]:
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


def revocation_lookup_terms(revocation: RevocationCertificate) -> list[IndexTerm]:
    """Index terms that find the key a bare revocation names (fingerprint first).

    The revocation names its key only through its issuer subpackets (RFC 9580 §5.2.3.12,
    §5.2.3.35).
    """
    signature = revocation.signature
    terms: list[IndexTerm] = []
    if signature.issuer_fingerprint:
        terms.append((IndexKind.FINGERPRINT, signature.issuer_fingerprint))
    if signature.issuer_key_id:
        terms.append((IndexKind.KEY_ID64, signature.issuer_key_id))
    return terms
