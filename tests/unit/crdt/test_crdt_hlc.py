"""Hybrid logical clock: monotonic under a backwards wall clock, causal, drift-bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.errors import ClockDriftError, DecodeError
from crdt.hlc import HLCTimestamp, HybridLogicalClock


class Wall:
    """A wall clock the test sets by hand (milliseconds)."""

    def __init__(self, ms: float = 0.0) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms


# (wall clock before each now(), expected stamp): the Kulkarni et al. rules, row by row.
NOW_TABLE = [
    (1000, HLCTimestamp(1000, 0)),
    (1000, HLCTimestamp(1000, 1)),  # same ms: logical ticks
    (1005, HLCTimestamp(1005, 0)),  # wall moved on: logical resets
    (900, HLCTimestamp(1005, 1)),  # wall jumped back: keep the old wall, tick
    (900, HLCTimestamp(1005, 2)),
    (1006, HLCTimestamp(1006, 0)),
]


def test_now_table_with_backwards_jump() -> None:
    wall = Wall()
    clock = HybridLogicalClock(wall)
    for ms, expected in NOW_TABLE:
        wall.ms = ms
        assert clock.now() == expected


# (local last, wall, received, expected) for update(): each branch of the receive rule.
UPDATE_TABLE = [
    (HLCTimestamp(10, 3), 5, HLCTimestamp(10, 7), HLCTimestamp(10, 8)),  # all equal walls
    (HLCTimestamp(10, 3), 5, HLCTimestamp(8, 9), HLCTimestamp(10, 4)),  # local wall largest
    (HLCTimestamp(10, 3), 5, HLCTimestamp(12, 2), HLCTimestamp(12, 3)),  # received largest
    (HLCTimestamp(10, 3), 20, HLCTimestamp(12, 2), HLCTimestamp(20, 0)),  # physical largest
]


@pytest.mark.parametrize(("last", "wall_ms", "received", "expected"), UPDATE_TABLE)
def test_update_table(
    last: HLCTimestamp, wall_ms: int, received: HLCTimestamp, expected: HLCTimestamp
) -> None:
    clock = HybridLogicalClock(Wall(wall_ms), last=last)
    assert clock.update(received) == expected
    assert clock.last == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000),  # wall clock (ms), jumping anywhere, also backwards
            st.none() | st.builds(HLCTimestamp, st.integers(0, 10_000), st.integers(0, 5)),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_strictly_monotonic_and_causal(script: list[tuple[int, HLCTimestamp | None]]) -> None:
    wall = Wall()
    clock = HybridLogicalClock(wall)
    previous = HLCTimestamp(0, 0)
    for ms, received in script:
        wall.ms = ms
        stamp = clock.now() if received is None else clock.update(received)
        assert stamp > previous, "HLC went backwards or stood still"
        if received is not None:
            assert stamp > received, "a receive must stamp after what it received"
        assert stamp.wall_ms >= ms, "HLC fell behind the wall clock"
        previous = stamp


def test_drift_bound_refuses_far_future_and_keeps_state() -> None:
    wall = Wall(1000)
    clock = HybridLogicalClock(wall, max_drift_ms=500)
    first = clock.now()
    with pytest.raises(ClockDriftError):
        clock.update(HLCTimestamp(1501, 0))
    assert clock.last == first
    assert clock.update(HLCTimestamp(1500, 0)) == HLCTimestamp(1500, 1)


def test_from_seconds_and_restart_floor() -> None:
    clock = HybridLogicalClock.from_seconds(lambda: 12.3456)
    assert clock.now() == HLCTimestamp(12345, 0)
    restarted = HybridLogicalClock(Wall(10), last=HLCTimestamp(12345, 0))
    assert restarted.now() == HLCTimestamp(12345, 1)


def test_timestamp_order_and_encoding() -> None:
    stamps = [HLCTimestamp(2, 0), HLCTimestamp(1, 9), HLCTimestamp(2, 1)]
    assert sorted(stamps) == [HLCTimestamp(1, 9), HLCTimestamp(2, 0), HLCTimestamp(2, 1)]
    stamp = HLCTimestamp(1_700_000_000_000, 3)
    assert HLCTimestamp.from_wire(stamp.to_wire()) == stamp
    for bad in (b"\x92\x01", b"\x92\xff\x00", b"\x93\x01\x02\x03", b"\x92\xc3\x00"):
        with pytest.raises(DecodeError):
            HLCTimestamp.from_wire(bad)
    with pytest.raises(ValueError):
        HLCTimestamp(-1, 0)
