"""Random replica histories for the CRDT property tests.

A history runs operations on 3-5 replicas and ships states or deltas between them through an
unreliable channel: each send is queued, deliveries pick any queued message (so messages are
reordered), a delivered message may stay queued (duplicated), and whatever is never picked is
dropped. `final_exchange` then gives every replica every other replica's state, after which
all replicas must hold the same bytes. Each type also keeps an event log, so the tests can
compare the converged state against an oracle of what the operations mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hypothesis import strategies as st

from crdt.dots import CausalContext, Dot
from crdt.gset import GSet
from crdt.hlc import HLCTimestamp
from crdt.lww import LWWRegister
from crdt.orset import ORSet
from crdt.rwset import RWSet
from crdt.vclock import VersionVector

S = TypeVar("S")

ELEMENTS = [b"a", b"b", b"c", b"d"]  # a small pool, so ops on one element collide often


def node_name(index: int) -> str:
    """The node id of replica `index`."""
    return f"node-{index}"


@dataclass
class Events:
    """What the operations did, for oracles: add/remove dots and what each had observed."""

    adds: list[tuple[bytes, Dot]] = field(default_factory=list)
    removes: list[tuple[bytes, Dot]] = field(default_factory=list)
    observed: set[Dot] = field(default_factory=set)
    values: list[object] = field(default_factory=list)


@dataclass
class CrdtType(Generic[S]):
    """How to drive one type: a fresh state, one random op (returning state and delta), merge."""

    name: str
    empty: Callable[[], S]
    op: Callable[[st.DataObject, S, str, Events], tuple[S, S]]
    merge: Callable[[S, S], S]
    wire: Callable[[S], bytes]


def _vv_op(data: st.DataObject, state: VersionVector, node: str, ev: Events):
    new = state.increment(node)
    ev.values.append((node, new.get(node)))
    return new, VersionVector({node: new.get(node)})


def _ctx_op(data: st.DataObject, state: CausalContext, node: str, ev: Events):
    # Arbitrary dots, not only the next one: builds dot clouds with gaps.
    dot = Dot(node, data.draw(st.integers(1, 6), label="dot counter"))
    ev.values.append(dot)
    delta = CausalContext.of([dot])
    return state.merge(delta), delta


def _gset_op(data: st.DataObject, state: GSet[bytes], node: str, ev: Events):
    element = data.draw(st.sampled_from(ELEMENTS), label="element")
    ev.values.append(element)
    return state.add(element), GSet([element])


def _orset_op(data: st.DataObject, state: ORSet[bytes], node: str, ev: Events):
    element = data.draw(st.sampled_from(ELEMENTS), label="element")
    ev.observed |= state.dots(element)
    if data.draw(st.booleans(), label="add?"):
        delta = state.add_delta(node, element)
        (dot,) = delta.dots(element)
        ev.adds.append((element, dot))
    else:
        delta = state.remove_delta(element)
    return state.merge(delta), delta


def _rwset_op(data: st.DataObject, state: RWSet[bytes], node: str, ev: Events):
    element = data.draw(st.sampled_from(ELEMENTS), label="element")
    is_add = data.draw(st.booleans(), label="add?")
    ev.observed |= state.add_dots(element) | state.remove_dots(element)
    dot = state.context.next_dot(node)
    delta = state.add_delta(node, element) if is_add else state.remove_delta(node, element)
    (ev.adds if is_add else ev.removes).append((element, dot))
    return state.merge(delta), delta


LWW_START: LWWRegister[bytes] = LWWRegister(b"", HLCTimestamp(0, 0), "start")


def _lww_op(data: st.DataObject, state: LWWRegister[bytes], node: str, ev: Events):
    # Stamps are drawn, not taken from a clock: equal stamps across nodes (tie-break by node)
    # and even a node reusing a stamp (tie-break by value) must still converge.
    stamp = HLCTimestamp(data.draw(st.integers(0, 4)), data.draw(st.integers(0, 2)))
    value = data.draw(st.sampled_from(ELEMENTS), label="value")
    write = LWWRegister(value, stamp, node)
    ev.values.append(write)
    return state.merge(write), write


TYPES: list[CrdtType[object]] = [
    CrdtType("vclock", VersionVector, _vv_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
    CrdtType(
        "causal-context", CausalContext, _ctx_op, lambda a, b: a.merge(b), lambda s: s.to_wire()
    ),
    CrdtType("gset", GSet, _gset_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
    CrdtType("orset", ORSet, _orset_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
    CrdtType("rwset", RWSet, _rwset_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
    CrdtType("lww", lambda: LWW_START, _lww_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
]  # type: ignore[list-item]


@dataclass
class History(Generic[S]):
    """The replicas' states after a random history, and its event log."""

    states: list[S]
    events: Events
    delivered: int = 0
    dropped: int = 0


def run_history(
    data: st.DataObject, kind: CrdtType[S], *, ship_deltas: bool, max_steps: int = 30
) -> History[S]:
    """Random ops and unreliable deliveries (reorder, duplicate, drop) on 3-5 replicas."""
    replicas = data.draw(st.integers(3, 5), label="replicas")
    states = [kind.empty() for _ in range(replicas)]
    events = Events()
    queue: list[tuple[int, S]] = []
    history = History(states, events)
    steps = data.draw(st.integers(0, max_steps), label="steps")
    for _ in range(steps):
        action = data.draw(st.sampled_from(["op", "op", "send", "deliver", "deliver"]))
        if action == "op":
            at = data.draw(st.integers(0, replicas - 1), label="op at")
            states[at], delta = kind.op(data, states[at], node_name(at), events)
            if ship_deltas:
                for dst in data.draw(st.sets(st.integers(0, replicas - 1)), label="delta to"):
                    queue.append((dst, delta))
        elif action == "send":
            src = data.draw(st.integers(0, replicas - 1), label="send from")
            dst = data.draw(st.integers(0, replicas - 1), label="send to")
            queue.append((dst, states[src]))
        elif queue:
            index = data.draw(st.integers(0, len(queue) - 1), label="deliver")
            dst, payload = queue[index]
            states[dst] = kind.merge(states[dst], payload)
            history.delivered += 1
            if not data.draw(st.booleans(), label="keep as duplicate"):
                queue.pop(index)
    history.dropped = len(queue)
    return history


def final_exchange(data: st.DataObject, kind: CrdtType[S], states: list[S]) -> list[S]:
    """Every replica merges every other replica's state, each in its own random order."""
    snapshot = list(states)
    result = []
    for index, state in enumerate(snapshot):
        others = data.draw(st.permutations(range(len(snapshot))), label=f"order at {index}")
        for other in others:
            state = kind.merge(state, snapshot[other])
        result.append(state)
    return result
