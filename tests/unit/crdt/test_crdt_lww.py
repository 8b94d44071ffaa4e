"""LWW register: stamp wins, then node id, then value bytes; HLC stamps make later writes win."""

from __future__ import annotations

import pytest

from crdt.encoding import decode_str
from crdt.errors import DecodeError
from crdt.hlc import HLCTimestamp, HybridLogicalClock
from crdt.lww import LWWRegister

T = HLCTimestamp


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        (LWWRegister("old", T(1, 0), "z"), LWWRegister("new", T(2, 0), "a"), "new"),
        (LWWRegister("old", T(2, 0), "z"), LWWRegister("new", T(2, 1), "a"), "new"),
        (LWWRegister("x", T(2, 1), "a"), LWWRegister("y", T(2, 1), "b"), "y"),  # node id
        (LWWRegister("x", T(2, 1), "a"), LWWRegister("y", T(2, 1), "a"), "y"),  # value bytes
    ],
)
def test_tie_breaks(a: LWWRegister[str], b: LWWRegister[str], winner: str) -> None:
    assert a.merge(b).value == winner
    assert b.merge(a).value == winner
    assert a.merge(b).to_wire() == b.merge(a).to_wire()


def test_write_after_seeing_wins_even_with_a_slow_clock() -> None:
    fast = HybridLogicalClock(lambda: 10_000)
    slow = HybridLogicalClock(lambda: 5)  # this node's wall clock is far behind
    first = LWWRegister("first", fast.now(), "fast")
    slow.update(first.stamp)  # the slow node receives the first write
    second = first.assign("second", slow.now(), "slow")
    assert second.value == "second"


def test_encoding() -> None:
    reg = LWWRegister("v", T(5, 1), "n")
    assert LWWRegister.from_wire(reg.to_wire(), decode_str) == reg
    with pytest.raises(DecodeError):
        LWWRegister.from_wire(reg.to_wire(), lambda v: int(str(v)))
    with pytest.raises(DecodeError):
        LWWRegister.from_wire(b"\x93\xa1v\x92\x05\x01\xa0", decode_str)  # empty node id
    with pytest.raises(ValueError):
        LWWRegister("v", T(1), "")
