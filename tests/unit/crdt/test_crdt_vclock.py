"""Version vectors: ordering table, dominance, immutability and the wire encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.errors import DecodeError
from crdt.vclock import Ordering, VersionVector

VV = VersionVector


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({}, {}, Ordering.EQUAL),
        ({"a": 1}, {"a": 1}, Ordering.EQUAL),
        ({"a": 1, "b": 0}, {"a": 1}, Ordering.EQUAL),  # zero entries do not exist
        ({}, {"a": 1}, Ordering.BEFORE),
        ({"a": 1}, {"a": 2}, Ordering.BEFORE),
        ({"a": 1}, {"a": 1, "b": 1}, Ordering.BEFORE),
        ({"a": 2, "b": 1}, {"a": 1}, Ordering.AFTER),
        ({"a": 1}, {"b": 1}, Ordering.CONCURRENT),
        ({"a": 2, "b": 1}, {"a": 1, "b": 2}, Ordering.CONCURRENT),
    ],
)
def test_compare_table(a: dict[str, int], b: dict[str, int], expected: Ordering) -> None:
    assert VV(a).compare(VV(b)) is expected
    mirrored = {Ordering.BEFORE: Ordering.AFTER, Ordering.AFTER: Ordering.BEFORE}
    assert VV(b).compare(VV(a)) is mirrored.get(expected, expected)
    assert VV(a).dominates(VV(b)) == (expected in (Ordering.EQUAL, Ordering.AFTER))


def test_increment_merge_get() -> None:
    empty = VV()
    one = empty.increment("a").increment("a").increment("b")
    assert (one.get("a"), one.get("b"), one.get("zzz")) == (2, 1, 0)
    assert empty.get("a") == 0, "increment must not mutate"
    merged = one.merge(VV({"a": 1, "c": 5}))
    assert dict(merged.items()) == {"a": 2, "b": 1, "c": 5}
    assert merged.dominates(one) and not one.dominates(merged)
    assert len(merged) == 3 and "c" in merged and merged.total() == 8


def test_is_immutable_and_hashable() -> None:
    vv = VV({"a": 1})
    with pytest.raises(AttributeError):
        vv._entries = {}  # type: ignore[misc]
    assert hash(vv) == hash(VV({"a": 1})) and {vv: 1}[VV({"a": 1, "z": 0})] == 1


def test_constructor_refuses_bad_entries() -> None:
    for bad in ({"a": -1}, {"": 1}, {"a": True}, {"a": 1.5}, {"a": 2**64}):
        with pytest.raises(ValueError):
            VV(bad)  # type: ignore[arg-type]


def test_wire_is_sorted_and_compact() -> None:
    a = VV({"b": 2, "a": 1})
    b = VV({"a": 1}).merge(VV({"b": 2}))
    assert a.to_wire() == b.to_wire() == b"\x82\xa1a\x01\xa1b\x02"
    assert list(a.to_obj()) == ["a", "b"]
    assert VV.from_wire(a.to_wire()) == a
    assert VV().to_wire() == b"\x80"


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x82\xa1a\x01", b"\x81\xa1a\xff", b"\x81\x01\x01", b"\x81\xa0\x01", b"\x90"],
)
def test_from_wire_refuses_garbage(data: bytes) -> None:
    with pytest.raises(DecodeError):
        VV.from_wire(data)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 2**64 - 1), max_size=6))
def test_wire_round_trip(entries: dict[str, int]) -> None:
    vv = VV(entries)
    assert VV.from_wire(vv.to_wire()) == vv
    assert VV.from_obj(vv.to_obj()) == vv


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        VV.from_wire(data)
    except DecodeError:
        pass
