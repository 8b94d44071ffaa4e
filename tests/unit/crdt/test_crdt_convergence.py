"""Replicas converge to identical bytes, and to what the operations mean (an oracle per type)."""

from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.vclock import VersionVector
from tests.unit.crdt.histories import TYPES, CrdtType, Events, final_exchange, run_history

BY_NAME = {kind.name: kind for kind in TYPES}


def _oracle(name: str, state: object, events: Events) -> None:
    """Assert the converged `state` is what the logged operations mean."""
    if name == "vclock":
        counts: dict[str, int] = {}
        for node, counter in events.values:  # type: ignore[misc]
            counts[node] = max(counts.get(node, 0), counter)
        assert state == VersionVector(counts)
    else:  # pragma: no cover - a new type needs an oracle
        raise AssertionError(name)


@pytest.mark.parametrize("ship_deltas", [False, True], ids=["states", "deltas"])
@pytest.mark.parametrize("name", sorted(BY_NAME))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_replicas_converge_to_identical_bytes(
    name: str, ship_deltas: bool, data: st.DataObject
) -> None:
    kind: CrdtType[object] = BY_NAME[name]
    history = run_history(data, kind, ship_deltas=ship_deltas)
    final = final_exchange(data, kind, history.states)
    encodings = {kind.wire(state) for state in final}
    assert len(encodings) == 1, f"{name}: replicas diverged after the full exchange"
    assert final[0] == reduce(kind.merge, history.states)
    _oracle(name, final[0], history.events)
