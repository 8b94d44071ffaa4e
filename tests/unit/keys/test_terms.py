"""Store index terms of corpus keys: key IDs, e-mails and keywords, and the terms a search uses."""

from __future__ import annotations

from meshkp.keys.terms import email_term, index_terms, keyword_terms
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view
from meshkp.store.protocol import IndexKind
from tests.unit.openpgp.keyfiles import cert


def _words(c: Certificate) -> set[str]:
    return {t.decode() for k, t in index_terms(c) if k == IndexKind.KEYWORD}


def test_index_terms_cover_key_ids_of_primary_and_subkeys() -> None:
    c = cert("steven-12345.asc")
    terms = index_terms(c)
    info = key_view(c)
    for fingerprint, key_id in [(info.fingerprint, info.key_id)] + [
        (s.fingerprint, s.key_id) for s in info.subkeys
    ]:
        assert (IndexKind.FINGERPRINT, fingerprint) in terms
        assert (IndexKind.KEY_ID64, key_id) in terms
        assert (IndexKind.KEY_ID32, key_id[-4:]) in terms
    assert (IndexKind.KEY_ID64, bytes.fromhex("3287F5A32632C2C3")) in terms


def test_hyphenated_words_are_keywords() -> None:
    words = _words(cert("steven-12345.asc"))
    assert {"steven-12345", "steven", "12345", "test", "encryption"} <= words
    assert {"steven-test@example.com", "steven-test", "example.com", "example", "com"} <= words
    for query in ("steven-12345", "Steven-12345", "steven-test@example.com", "STEVEN 12345"):
        assert {t.decode() for t in keyword_terms(query)} <= words, query


def test_bare_email_user_id() -> None:
    c = cert("bare-email-posteo.asc")
    terms = index_terms(c)
    assert (IndexKind.EMAIL, b"support@posteo.de") in terms
    assert {"support@posteo.de", "support", "posteo.de", "posteo", "de"} == _words(c)
    assert key_view(c).user_ids[0].email == "support@posteo.de"


def test_email_is_lowercased_and_taken_from_angle_brackets() -> None:
    terms = index_terms(cert("lp1195901.asc"))
    emails = {t for k, t in terms if k == IndexKind.EMAIL}
    assert emails == {
        b"phil.pennock@spodhuis.org", b"pdp@exim.org", b"pdp@spodhuis.org",
        b"pdp@spodhuis.demon.nl", b"phil.pennock@globnix.org",
    }
    assert email_term(" Phil.Pennock@Spodhuis.ORG ") == b"phil.pennock@spodhuis.org"


def test_keyword_terms_tokenise_like_user_ids_most_selective_first() -> None:
    assert keyword_terms("Phil Pennock") == [b"pennock", b"phil"]
    assert keyword_terms("pdp@exim.org")[0] == b"pdp@exim.org"
    assert keyword_terms("Jelmer Vernooĳ") == ["vernooĳ".encode(), b"jelmer"]
    assert keyword_terms("  ,;: ") == []


def test_latin1_user_ids_are_searchable() -> None:
    from meshkp.openpgp.keywords import tokens, user_id_text

    text = user_id_text("Jürgen Müller <jm@example.de>".encode("latin-1"))
    assert text == "Jürgen Müller <jm@example.de>"
    assert "müller" in tokens(text, 64)
    assert keyword_terms("Müller") == ["müller".encode()]


def test_keywords_capped_in_number_and_length() -> None:
    c = cert("lp1195901.asc")
    limits = Limits(keywords_per_key=5, keyword_bytes=6)
    words = [t for k, t in index_terms(c, limits) if k == IndexKind.KEYWORD]
    assert len(words) == 5
    assert all(len(w) <= 6 for w in words)
    # The primary user ID's keywords come first, so they survive the cap.
    assert b"phil.p" in words
    assert keyword_terms("phil.pennock@spodhuis.org", limits)[0] == b"phil.p"
    # Non-keyword terms are never capped.
    assert len([t for k, t in index_terms(c, limits) if k == IndexKind.FINGERPRINT]) == 8
