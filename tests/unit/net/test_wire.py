"""Frame codec: round trips, and every kind of bad input is a WireError (never anything else)."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.errors import FrameTooLarge, UnsupportedWireVersion, WireError
from meshkp.net.wire import (
    UDP_DATAGRAM_BYTES,
    WIRE_VERSION,
    Frame,
    decode_frame,
    encode_frame,
)

MAX = UDP_DATAGRAM_BYTES


def test_round_trip_keeps_type_body_and_sender() -> None:
    frame = Frame(7, {"seq": 42, "node": "abc", "addr": b"\x7f\x00\x00\x01", "l": [1, 2]}, "n1")
    assert decode_frame(encode_frame(frame, MAX), MAX) == frame


def test_round_trip_without_sender() -> None:
    frame = Frame(0, {})
    data = encode_frame(frame, MAX)
    assert data[:2] == bytes((WIRE_VERSION, 0))
    assert decode_frame(data, MAX) == frame


def test_encode_refuses_oversize_frame() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(Frame(1, {"blob": b"x" * MAX}), MAX)


def test_encode_refuses_reserved_keys_and_unencodable_bodies() -> None:
    with pytest.raises(WireError):
        encode_frame(Frame(1, {"_from": "spoof"}), MAX)
    with pytest.raises(WireError):
        encode_frame(Frame(1, {"x": object()}), MAX)
    with pytest.raises(WireError):
        encode_frame(Frame(256, {}), MAX)


def test_decode_checks_size_before_parsing() -> None:
    data = encode_frame(Frame(1, {"blob": b"x" * 100}), 10_000)
    with pytest.raises(FrameTooLarge) as info:
        decode_frame(data, len(data) - 1)
    assert info.value.reason == "oversize"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x01\x05",  # header only
        b"\x01\x05\xc1",  # 0xc1 is never used in msgpack
        b"\x01\x05\x93\x01\x02\x03",  # an array, not a map
        b"\x01\x05" + msgpack.packb({1: 2}),  # non-string key
        b"\x01\x05" + msgpack.packb({"a": 1}) + b"\x00",  # trailing bytes
        b"\x01\x05" + msgpack.packb({"_evil": 1}),  # unknown reserved key
        b"\x01\x05" + msgpack.packb({"_from": 5}),  # sender of the wrong type
        b"\x01\x05" + msgpack.packb({"_from": "x" * 65}),  # sender too long
        b"\x01\x05" + msgpack.packb({"e": msgpack.ExtType(3, b"zz")}),  # ext types refused
        b"\x01\x05\x81\xa1a\xa3\xff\xfe\xfd",  # invalid UTF-8 string
        b"\x01\x05\xdf\xff\xff\xff\xff",  # map claiming 4 billion entries
        b"\x01\x05" + b"\x91" * 5000 + b"\x80",  # deep nesting inside an array
    ],
)
def test_garbage_is_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_frame(data, 100_000)


def test_wrong_version_is_typed() -> None:
    data = bytes((WIRE_VERSION + 1,)) + encode_frame(Frame(1, {}), MAX)[1:]
    with pytest.raises(UnsupportedWireVersion) as info:
        decode_frame(data, MAX)
    assert info.value.reason == "version"


def test_every_truncation_is_wire_error() -> None:
    data = encode_frame(Frame(3, {"node": "n" * 20, "inc": 9, "addr": b"1234"}, "me"), MAX)
    for cut in range(len(data)):
        with pytest.raises(WireError):
            decode_frame(data[:cut], MAX)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_wire_error(data: bytes) -> None:
    try:
        frame = decode_frame(bytes((WIRE_VERSION, 1)) + data, 1000)
    except WireError:
        return
    assert isinstance(frame.body, dict)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 255),
    st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: not k.startswith("_")),
                    _values, max_size=6),
)
def test_round_trip_property(frame_type: int, body: dict) -> None:
    frame = Frame(frame_type, body)
    assert decode_frame(encode_frame(frame, 100_000), 100_000) == frame
