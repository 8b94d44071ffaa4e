"""The key layout: prefix scans are exact, namespaces never collide, values round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.store import layout
from meshkp.store.protocol import IndexKind

_kinds = st.sampled_from(list(IndexKind))
_terms = st.binary(min_size=1, max_size=40)
_fingerprints = st.sampled_from([16, 20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@given(_kinds, _terms, _kinds, _terms, _fingerprints)
def test_an_index_prefix_matches_only_its_own_terms_entries(
    kind: IndexKind, term: bytes, other_kind: IndexKind, other_term: bytes, fingerprint: bytes
) -> None:
    entry = layout.index_key(other_kind, other_term, fingerprint)
    matches = entry.startswith(layout.index_prefix(kind, term))
    assert matches == ((kind, term) == (other_kind, other_term))
    if matches:
        assert entry[len(layout.index_prefix(kind, term)) :] == fingerprint


def test_index_key_is_the_documented_bytes() -> None:
    key = layout.index_key(IndexKind.EMAIL, b"a@b", b"\x01" * 20)
    assert key == b"i" + b"e" + b"\x00\x03" + b"a@b" + b"\x01" * 20


def test_namespaces_are_distinct_single_bytes() -> None:
    spaces = [layout.META, layout.RECORD, layout.INDEX, layout.COUNTER, layout.EXTRA]
    assert all(len(space) == 1 for space in spaces)
    assert len(set(spaces)) == len(spaces)
    assert layout.SCHEMA_KEY.startswith(layout.META)


@given(st.integers(layout.COUNTER_MIN, layout.COUNTER_MAX))
def test_counters_round_trip(value: int) -> None:
    assert layout.decode_counter(layout.encode_counter(value)) == value


@pytest.mark.parametrize(("raw", "version"), [(b"1", 1), (b"12", 12), (b"", None), (b"v1", None),
                                              (b"\xff", None)])
def test_schema_version_decoding(raw: bytes, version: int | None) -> None:
    assert layout.decode_schema_version(raw) == version


def test_index_prefix_accepts_the_one_letter_kind() -> None:
    assert layout.index_prefix("w", b"x") == layout.index_prefix(IndexKind.KEYWORD, b"x")  # type: ignore[arg-type]
