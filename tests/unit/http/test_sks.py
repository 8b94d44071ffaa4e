"""The SKS /pks/hashquery wire format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import InvalidRequest
from meshkp.http.sks import (
    decode_hashquery_response,
    encode_hashquery_request,
    encode_hashquery_response,
    parse_hashquery,
)

DIGESTS = st.lists(st.binary(min_size=16, max_size=16), max_size=20)


@given(DIGESTS)
def test_request_round_trip(digests: list[bytes]) -> None:
    assert parse_hashquery(encode_hashquery_request(digests)) == digests


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_response_round_trip(keys: list[bytes]) -> None:
    body = encode_hashquery_response(keys)
    assert body.endswith(b"\r\n")
    assert decode_hashquery_response(body) == keys


def test_response_layout() -> None:
    assert encode_hashquery_response([b"ab"]) == b"\x00\x00\x00\x01\x00\x00\x00\x02ab\r\n"


@pytest.mark.parametrize("body", [
    b"", b"\x00\x00\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x01\x00\x00\x00\x10short",
    b"\x00\x00\x00\x01\x00\x00\x00\x04abcd", b"\x7f\xff\xff\xff",
    encode_hashquery_request([b"\x00" * 16]) + b"trailing",
])
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_hashquery(body)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_invalid_request(body: bytes) -> None:
    try:
        parse_hashquery(body)
    except InvalidRequest:
        pass
