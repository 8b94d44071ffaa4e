"""Deterministic msgpack helpers."""

from __future__ import annotations

import pytest

from crdt.encoding import as_int, canonical, packb, unpackb
from crdt.errors import DecodeError


def test_maps_are_sorted_whatever_the_insertion_order() -> None:
    assert packb({"b": 1, "a": {"y": 2, "x": 1}}) == packb({"a": {"x": 1, "y": 2}, "b": 1})
    assert list(canonical({2: 0, 1: 0})) == [1, 2]  # type: ignore[call-overload]


def test_refuses_unordered_and_mixed_keys() -> None:
    with pytest.raises(TypeError):
        packb({1, 2})
    with pytest.raises(TypeError):
        packb({(1, 2): 0})


@pytest.mark.parametrize("data", [b"", b"\x92\x01", b"\x01\x02", b"\xd4\x01\x00", b"\xc1"])
def test_unpack_failures_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        unpackb(data, "thing")


def test_bools_are_not_ints() -> None:
    with pytest.raises(DecodeError):
        as_int(True, "flag")
