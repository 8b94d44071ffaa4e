"""Replication messages round-trip, and any malformed or oversized body is a WireError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import WireError
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame
from meshkp.replication.messages import (
    MAX_BATCH_RECORDS,
    MESSAGE_TYPES,
    DiffAnswer,
    DiffQuery,
    Fetch,
    PushAck,
    PushBatch,
    RecordBatch,
    Scan,
    ScanBatch,
    SyncError,
    decode_message,
)

FP = bytes(range(20))
SAMPLES = [
    PushBatch((b"rec1", b"rec2"), True, 1700000000.5),
    PushBatch((b"x",), False),
    PushBatch((b"x",), True, 0.0, relay=False),
    PushAck((0, 1, 2)),
    DiffQuery(b"\x81\xa1v\x01"),
    DiffAnswer(b""),
    Fetch((FP, bytes(32), bytes(16))),
    RecordBatch((b"r",), (FP,)),
    SyncError("nope"),
    Scan(b"", 1000),
    Scan(FP, 1),
    ScanBatch((b"r", b"s"), FP, 12),
    ScanBatch((), b"", 0),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_the_frame_codec(message) -> None:
    frame = decode_frame(encode_frame(Frame(message.TYPE, message.to_map()), TCP_FRAME_BYTES),
                         TCP_FRAME_BYTES)
    assert decode_message(frame.type, frame.body) == message


def test_type_codes_are_unique_and_outside_swim_range() -> None:
    assert all(40 <= code < 60 for code in MESSAGE_TYPES)


@pytest.mark.parametrize(
    "type_code, body",
    [
        (PushBatch.TYPE, {"recs": "nope", "fwd": True}),
        (PushBatch.TYPE, {"recs": [b""], "fwd": True}),
        (PushBatch.TYPE, {"recs": [b"x"], "fwd": 1}),
        (PushBatch.TYPE, {"recs": [b"x"] * (MAX_BATCH_RECORDS + 1), "fwd": True}),
        (PushBatch.TYPE, {"recs": [b"x"], "fwd": True, "ts": -1}),
        (PushBatch.TYPE, {"recs": [b"x"], "fwd": True, "rly": 1}),
        (PushAck.TYPE, {"st": [3]}),
        (PushAck.TYPE, {"st": [True]}),
        (Fetch.TYPE, {"ids": [b"short"]}),
        (RecordBatch.TYPE, {"recs": [b"x"], "rest": [1]}),
        (DiffQuery.TYPE, {"q": "text"}),
        (SyncError.TYPE, {"reason": "x" * 10_000}),
        (Scan.TYPE, {"after": b"", "n": 0}),
        (Scan.TYPE, {"after": b"", "n": MAX_BATCH_RECORDS + 1}),
        (Scan.TYPE, {"after": b"short", "n": 10}),
        (Scan.TYPE, {"after": b"", "n": True}),
        (ScanBatch.TYPE, {"recs": [b"x"], "next": b"", "total": -1}),
        (ScanBatch.TYPE, {"recs": [b"x"], "next": b"abc", "total": 1}),
        (99, {}),
    ],
)
def test_malformed_bodies_are_wire_errors(type_code: int, body: dict) -> None:
    with pytest.raises(WireError):
        decode_message(type_code, body)


def test_a_push_without_the_relay_field_asks_to_relay() -> None:
    assert decode_message(PushBatch.TYPE, {"recs": [b"x"], "fwd": True}) == PushBatch((b"x",))


def test_a_batch_over_the_byte_bound_is_refused() -> None:
    big = b"x" * (1024 * 1024)
    with pytest.raises(WireError):
        decode_message(PushBatch.TYPE, {"recs": [big] * 9, "fwd": True})


@given(st.sampled_from(sorted(MESSAGE_TYPES)),
       st.dictionaries(st.sampled_from(["recs", "fwd", "ts", "st", "q", "a", "ids", "rest", "reason",
                                        "after", "n", "next", "total"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.binary(max_size=40),
                                 st.text(max_size=20), st.lists(st.binary(max_size=33), max_size=4))))
def test_arbitrary_bodies_decode_or_raise_wire_error_only(type_code: int, body: dict) -> None:
    try:
        decode_message(type_code, body)
    except WireError:
        pass
