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

from crdt.vclock import VersionVector

S = TypeVar("S")


def node_name(index: int) -> str:
    """The node id of replica `index`."""
    return f"node-{index}"


@dataclass
class Events:
    """What the operations did, for oracles."""

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


TYPES: list[CrdtType[object]] = [
    CrdtType("vclock", VersionVector, _vv_op, lambda a, b: a.merge(b), lambda s: s.to_wire()),
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
