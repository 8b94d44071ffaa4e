"""Wire messages: every type round-trips through a frame; bad input is a WireError, only."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, MembershipChange
from meshkp.control.raft.messages import (
    MAX_ENTRIES,
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    ProposeReply,
    ProposeRequest,
    Refused,
    VoteRequest,
    VoteResponse,
    decode_message,
    is_control_type,
)
from meshkp.control.raft.types import Entry, EntryKind, Snapshot
from meshkp.errors import FrameTooLarge, WireError
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame

CONFIG_ENTRY = ConfigChange(MembershipChange(ChangeOp.ADD_LEARNER, "d"),
                            Configuration(frozenset({"a"}), frozenset({"d"}))).encode()

SAMPLES = [
    AppendEntries(3, 7, 2, (Entry(8, 3, EntryKind.COMMAND, b"x"), Entry(9, 3, EntryKind.NOOP),
                            Entry(10, 3, EntryKind.CONFIG, CONFIG_ENTRY)), 6, 12.5),
    AppendEntries(3, 7, 2, (), 6, 0.0),
    AppendResponse(3, True, 9, 12.5),
    AppendResponse(3, False, 7, 12.5, 4, 2),
    VoteRequest(4, 9, 3, True),
    VoteResponse(4, False, False),
    InstallSnapshot(5, Snapshot(40, 4, Configuration(frozenset({"a", "b"}), frozenset(), ("z",)), b"s"), 1.0),
    Refused(5, "removed"),
    ProposeRequest(17, b"payload"),
    ProposeReply(17, 5, 41, "", "a"),
    ProposeReply(18, error="not the leader", leader=""),
]


def _wire(message: object) -> bytes:
    return encode_frame(Frame(message.TYPE, message.to_map(), sender="a"), TCP_FRAME_BYTES)  # type: ignore[attr-defined]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_a_frame(message: object) -> None:
    frame = decode_frame(_wire(message), TCP_FRAME_BYTES)
    assert frame.sender == "a" and is_control_type(frame.type)
    assert decode_message(frame.type, frame.body) == message


def test_type_codes_are_the_control_planes() -> None:
    assert all(60 <= type(m).TYPE <= 69 for m in SAMPLES)
    assert not is_control_type(40) and not is_control_type(1)
    with pytest.raises(WireError, match="not a control-plane message"):
        decode_message(40, {})


@pytest.mark.parametrize("body", [
    {},
    {"t": -1, "pi": 0, "pt": 0, "e": [], "c": 0, "at": 0.0},
    {"t": 1, "pi": 0, "pt": 0, "e": [[1, 9, b""]], "c": 0, "at": 0.0},  # unknown kind
    {"t": 1, "pi": 0, "pt": 0, "e": [[1, 0, b"x"]], "c": 0, "at": 0.0},  # no-op with data
    {"t": 1, "pi": 0, "pt": 0, "e": [[1, 2, b"junk"]], "c": 0, "at": 0.0},  # bad config entry
    {"t": 1, "pi": 0, "pt": 0, "e": [[1, 1, "str"]], "c": 0, "at": 0.0},
    {"t": 1, "pi": 0, "pt": 0, "e": [], "c": 0, "at": float("nan")},
    {"t": True, "pi": 0, "pt": 0, "e": [], "c": 0, "at": 0.0},
    {"t": 1, "pi": 0, "pt": 0, "e": [[1, 1, b""]] * (MAX_ENTRIES + 1), "c": 0, "at": 0.0},
])
def test_bad_append_entries_are_wire_errors(body: dict[str, object]) -> None:
    with pytest.raises(WireError):
        decode_message(AppendEntries.TYPE, body)


def test_an_oversize_frame_is_refused_before_decoding() -> None:
    huge = ProposeRequest(1, bytes(1024))
    data = encode_frame(Frame(huge.TYPE, huge.to_map()), TCP_FRAME_BYTES)
    with pytest.raises(FrameTooLarge):
        decode_frame(data, 512)


@given(st.dictionaries(st.sampled_from(["t", "pi", "pt", "e", "c", "at", "ok", "i", "s", "d", "id", "r",
                                        "li", "lt", "pre", "hi", "ht", "err", "l"]),
                       st.one_of(st.integers(-2, 2**64 - 1), st.binary(max_size=8), st.text(max_size=8),
                                 st.booleans(), st.floats(),
                                 st.lists(st.integers(-2**63, 2**64 - 1), max_size=3),
                                 st.none())),
       st.sampled_from([type(m).TYPE for m in SAMPLES]))
def test_arbitrary_bodies_give_a_message_or_a_wire_error(body: dict[str, object], type_code: int) -> None:
    packed = msgpack.packb(body, use_bin_type=True)
    try:
        decode_message(type_code, msgpack.unpackb(packed, raw=False))
    except WireError:
        pass
