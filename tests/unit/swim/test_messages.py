"""SWIM messages: msgpack round trips, stable type codes, and rejection of malformed maps."""

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.errors import WireError
from meshkp.swim.fields import MAX_META_BYTES, MAX_NODE_ID_CHARS
from meshkp.swim.messages import (
    COMPOUND_HEADER,
    MESSAGE_TYPES,
    Ack,
    Alive,
    Compound,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    bundle,
    decode_message,
    part_size,
    unbundle,
)
from meshkp.swim.types import Status

A = ("10.0.0.1", 7946)
B = ("node-b.example", 7947)

SAMPLES: list[Message] = [
    Ping(1, "b", "a", A),
    Ping(2, "", "a", A),
    Ack(3),
    PingReq(4, "c", B, "a", A, nack=True),
    Nack(5),
    Alive("a", A, 7, {"http": "10.0.0.1:11371"}),
    Suspect("b", 2, "a"),
    Dead("b", 2, "a"),
    Leave("a", 8),
    PushPull("a", join=True, reply=False,
             members=(MemberRecord("a", A, 1, Status.ALIVE, {"http": "x"}),
                      MemberRecord("b", B, 9, Status.LEFT, {})),
             user_state=b"\x00merkle-root"),
    Compound((Ping(6, "b", "a", A), Alive("a", A, 1, {}), Dead("c", 1, "a"))),
]


def wire_roundtrip(message: Message) -> Message:
    """What a transport does: msgpack the map, unpack it, rebuild from the type code."""
    data = msgpack.packb(message.to_map(), use_bin_type=True)
    return decode_message(message.TYPE, msgpack.unpackb(data, raw=False))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    assert wire_roundtrip(message) == message


def test_type_codes_are_stable_and_unique() -> None:
    codes = {cls.__name__: code for code, cls in MESSAGE_TYPES.items()}
    assert codes == {"Ping": 1, "Ack": 2, "PingReq": 3, "Nack": 4, "Alive": 5, "Suspect": 6,
                     "Dead": 7, "Leave": 8, "PushPull": 9, "Compound": 10}


def test_bundle_and_unbundle() -> None:
    one = Ack(1)
    assert bundle([one]) is one
    assert unbundle(one) == (one,)
    both = bundle([one, Nack(2)])
    assert isinstance(both, Compound)
    assert unbundle(both) == (one, Nack(2))
    with pytest.raises(ValueError):
        bundle([])


def test_part_size_bounds_the_compound_encoding() -> None:
    parts = [Ping(1, "b", "a", A), Alive("a", A, 1, {"http": "h"}), Dead("c", 2, "a")]
    body = msgpack.packb(Compound(tuple(parts)).to_map(), use_bin_type=True)
    assert len(body) <= COMPOUND_HEADER + sum(part_size(p) for p in parts)


BAD: list[tuple[int, Any, str]] = [
    (Ping.TYPE, [], "map"),
    (Ping.TYPE, {"seq": 1, "target": "b", "source": "a"}, "missing field 'source_addr'"),
    (Ping.TYPE, {"seq": -1, "target": "b", "source": "a", "source_addr": list(A)}, "seq"),
    (Ping.TYPE, {"seq": True, "target": "b", "source": "a", "source_addr": list(A)}, "seq"),
    (Ping.TYPE, {"seq": 2**64, "target": "b", "source": "a", "source_addr": list(A)}, "seq"),
    (Ping.TYPE, {"seq": 1, "target": "b", "source": "", "source_addr": list(A)}, "source"),
    (Ping.TYPE, {"seq": 1, "target": "b", "source": "a", "source_addr": ["h", 0]}, "port"),
    (Ping.TYPE, {"seq": 1, "target": "b", "source": "a", "source_addr": ["h", 70000]}, "port"),
    (Ping.TYPE, {"seq": 1, "target": "b", "source": "a", "source_addr": ["h"]}, "host, port"),
    (Ping.TYPE, {"seq": 1, "target": 5, "source": "a", "source_addr": list(A)}, "target"),
    (PingReq.TYPE, {"seq": 1, "target": "c", "target_addr": list(B), "source": "a",
                    "source_addr": list(A), "nack": 1}, "nack"),
    (Alive.TYPE, {"node": "x" * (MAX_NODE_ID_CHARS + 1), "addr": list(A), "inc": 1,
                  "meta": {}}, "node"),
    (Alive.TYPE, {"node": "a", "addr": list(A), "inc": 1, "meta": {"k": 1}}, "meta"),
    (Alive.TYPE, {"node": "a", "addr": list(A), "inc": 1,
                  "meta": {"k": "v" * MAX_META_BYTES}}, "meta exceeds"),
    (Alive.TYPE, {"node": "a", "addr": list(A), "inc": 1,
                  "meta": {str(i): "" for i in range(17)}}, "meta"),
    (Suspect.TYPE, {"node": "a", "inc": "1", "source": "b"}, "inc"),
    (PushPull.TYPE, {"source": "a", "join": False, "reply": False, "members": "x",
                     "user": b""}, "members"),
    (PushPull.TYPE, {"source": "a", "join": False, "reply": False,
                     "members": [["a", list(A), 1, 9, {}]], "user": b""}, "status"),
    (PushPull.TYPE, {"source": "a", "join": False, "reply": False,
                     "members": [["a", list(A), 1]], "user": b""}, "node, addr"),
    (PushPull.TYPE, {"source": "a", "join": False, "reply": False, "members": [],
                     "user": "text"}, "user state"),
    (Compound.TYPE, {"m": []}, "1..255"),
    (Compound.TYPE, {"m": [[Compound.TYPE, {"m": [[2, {"seq": 1}]]}]]}, "cannot be compound"),
    (Compound.TYPE, {"m": [[PushPull.TYPE, {}]]}, "push-pull"),
    (Compound.TYPE, {"m": [[2]]}, "type, map"),
    (Compound.TYPE, {"m": [[99, {}]]}, "unknown message type"),
    (99, {}, "unknown message type"),
    ("1", {}, "unknown message type"),
]


@pytest.mark.parametrize(("type_code", "body", "mentions"), BAD)
def test_malformed_maps_raise_wire_error(type_code: int, body: Any, mentions: str) -> None:
    with pytest.raises(WireError, match=mentions):
        decode_message(type_code, body)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=20)
    | st.binary(max_size=20) | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=8,
)
field_names = st.sampled_from(["seq", "target", "source", "source_addr", "target_addr", "nack",
                               "node", "addr", "inc", "meta", "join", "reply", "members",
                               "user", "m"])


@settings(max_examples=150, deadline=None)
@given(type_code=st.integers(0, 12),
       body=st.dictionaries(field_names, msgpack_values, max_size=7) | msgpack_values)
def test_hostile_bodies_only_ever_raise_wire_error(type_code: int, body: Any) -> None:
    try:
        message = decode_message(type_code, body)
    except WireError:
        return
    # Whatever was accepted must survive a wire round trip unchanged.
    assert wire_roundtrip(message) == message
