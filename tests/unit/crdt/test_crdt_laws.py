"""Merge is a join: commutative, associative, idempotent (and absorbs its inputs), byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.crdt.histories import TYPES, CrdtType, run_history

BY_NAME = {kind.name: kind for kind in TYPES}


def _three_states(data: st.DataObject, kind: CrdtType[object]) -> tuple[object, object, object]:
    """Three reachable, typically concurrent states: replicas of one random history."""
    states = run_history(data, kind, ship_deltas=data.draw(st.booleans())).states
    pick = st.integers(0, len(states) - 1)
    return states[data.draw(pick)], states[data.draw(pick)], states[data.draw(pick)]


@pytest.mark.parametrize("name", sorted(BY_NAME))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_merge_is_a_join(name: str, data: st.DataObject) -> None:
    kind = BY_NAME[name]
    a, b, c = _three_states(data, kind)
    merge, wire = kind.merge, kind.wire
    assert wire(merge(a, b)) == wire(merge(b, a)), "not commutative"
    assert wire(merge(merge(a, b), c)) == wire(merge(a, merge(b, c))), "not associative"
    assert wire(merge(a, a)) == wire(a), "not idempotent"
    assert merge(a, b) == merge(b, a)
    joined = merge(a, b)
    assert wire(merge(joined, a)) == wire(joined) == wire(merge(joined, b)), "not an upper bound"
