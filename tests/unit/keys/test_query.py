"""Classification of the HKP `search` variable."""

from __future__ import annotations

import pytest

from meshkp.errors import ConfigError, InvalidRequest
from meshkp.keys.query import parse_query
from meshkp.limits import Limits
from meshkp.store.protocol import IndexKind

LIMITS = Limits()
FPR = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"


@pytest.mark.parametrize("search, kind, term", [
    ("0x" + FPR, IndexKind.FINGERPRINT, bytes.fromhex(FPR)),
    ("0X" + FPR.lower(), IndexKind.FINGERPRINT, bytes.fromhex(FPR)),
    (FPR, IndexKind.FINGERPRINT, bytes.fromhex(FPR)),
    ("0x" + "ab" * 32, IndexKind.FINGERPRINT, b"\xab" * 32),
    ("0x" + FPR[-16:], IndexKind.KEY_ID64, bytes.fromhex(FPR[-16:])),
    ("0x" + FPR[-8:], IndexKind.KEY_ID32, bytes.fromhex(FPR[-8:])),
    ("  0x" + FPR[-8:] + " ", IndexKind.KEY_ID32, bytes.fromhex(FPR[-8:])),
    ("Alice@Example.COM", IndexKind.EMAIL, b"alice@example.com"),
    ("<alice@example.com>", IndexKind.EMAIL, b"alice@example.com"),
])
def test_key_ids_and_emails(search: str, kind: IndexKind, term: bytes) -> None:
    query = parse_query(search, False, LIMITS)
    assert query.terms == ((kind, term),) and query.exact_uid is None


def test_exact_email_is_the_email_index() -> None:
    query = parse_query("alice@example.com", True, LIMITS)
    assert query.terms == ((IndexKind.EMAIL, b"alice@example.com"),)


def test_exact_full_user_id_filters_by_uid() -> None:
    query = parse_query("Alice <alice@example.com>", True, LIMITS)
    assert query.terms == ((IndexKind.EMAIL, b"alice@example.com"),)
    assert query.exact_uid == "Alice <alice@example.com>"


def test_free_text_is_keywords() -> None:
    query = parse_query("Steven Test", False, LIMITS)
    assert {t for _, t in query.terms} == {b"steven", b"test"}
    assert all(kind is IndexKind.KEYWORD for kind, _ in query.terms)


@pytest.mark.parametrize("search", [
    None, "", "   ", "0x", "0x123", "0x" + "g" * 8, "0x" + "a" * 12, "0x" + "a" * 41,
    "!!! ???", "x" * (LIMITS.search_chars + 1),
    " ".join(f"word{i}" for i in range(LIMITS.search_keywords + 1)),
])
def test_malformed_searches_raise_with_reason(search: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_query(search, False, LIMITS)
    assert len(str(info.value)) > 10


def test_keywords_per_search_is_the_configured_limit() -> None:
    three = "alpha beta gamma"
    assert len(parse_query(three, False, Limits(search_keywords=3)).terms) == 3
    with pytest.raises(InvalidRequest, match="limits.search_keywords"):
        parse_query(three, False, Limits(search_keywords=2))


def test_keyword_scan_must_cover_a_reply() -> None:
    Limits(keyword_scan=100, search_results=100, get_results=10).validate()
    with pytest.raises(ConfigError, match="keyword_scan"):
        Limits(keyword_scan=99, search_results=100).validate()
    with pytest.raises(ConfigError, match="search_keywords"):
        Limits(search_keywords=0).validate()
