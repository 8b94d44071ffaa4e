"""G-Set, add-wins OR-Set and remove-wins set: the concurrent add/remove cases and encodings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.dots import CausalContext, Dot
from crdt.encoding import decode_bytes, packb
from crdt.errors import DecodeError
from crdt.gset import GSet
from crdt.orset import ORSet, orset_of
from crdt.rwset import RWSet
from tests.unit.crdt.histories import TYPES, final_exchange, run_history

ORSET = next(kind for kind in TYPES if kind.name == "orset")
RWSET = next(kind for kind in TYPES if kind.name == "rwset")


def test_gset_union() -> None:
    a = GSet([b"x"]).add(b"y")
    b = GSet([b"z"])
    assert a.merge(b).elements() == {b"x", b"y", b"z"}
    assert a.merge(b).to_wire() == b.merge(a).to_wire() == packb([b"x", b"y", b"z"])
    assert GSet.from_wire(a.to_wire(), decode_bytes) == a
    with pytest.raises(DecodeError):
        GSet.from_wire(packb([b"x", b"x"]), decode_bytes)
    with pytest.raises(DecodeError):
        GSet.from_wire(packb(["text"]), decode_bytes)


def test_orset_concurrent_add_survives_remove() -> None:
    a = ORSet[bytes]().add("A", b"x")
    b = ORSet[bytes]().merge(a)
    removed = b.remove(b"x")  # B saw A's add, removes it
    readded = a.add("A", b"x")  # concurrently, A adds x again
    assert b"x" not in removed
    for merged in (removed.merge(readded), readded.merge(removed)):
        assert b"x" in merged, "add-wins: the add the remover never saw must survive"
    # Without the concurrent add the remove sticks.
    assert b"x" not in removed.merge(a)


def test_orset_has_no_tombstones() -> None:
    s = orset_of("A", [bytes([i]) for i in range(200)])
    for i in range(200):
        s = s.remove(bytes([i]))
    assert len(s) == 0
    context, entries = s.to_obj()
    assert entries == [] and context == [{"A": 200}, []]
    assert len(s.to_wire()) < 20, "removed elements must leave nothing behind"


def test_orset_delta_arriving_before_its_predecessor() -> None:
    origin: ORSet[bytes] = ORSet()
    add = origin.add_delta("A", b"x")
    after_add = origin.merge(add)
    remove = after_add.remove_delta(b"x")
    replica: ORSet[bytes] = ORSet()
    replica = replica.merge(remove)  # the remove overtook the add on the wire
    assert replica.context.contains(Dot("A", 1)) and len(replica) == 0
    replica = replica.merge(add)
    assert b"x" not in replica, "a late add must not resurrect an element its remove saw"
    assert replica == after_add.merge(remove)


def test_rwset_concurrent_remove_wins() -> None:
    a = RWSet[bytes]().add("A", b"x")
    b = RWSet[bytes]().merge(a)
    readded = a.add("A", b"x")
    removed = b.remove("B", b"x")
    for merged in (removed.merge(readded), readded.merge(removed)):
        assert b"x" not in merged, "remove-wins: a concurrent add must not survive the takedown"
        assert merged.removed() == {b"x"}
    # An add made after seeing the remove brings the element back.
    restored = readded.merge(removed).add("A", b"x")
    assert b"x" in restored and restored.removed() == frozenset()


def test_rwset_takedown_before_the_element_arrives() -> None:
    takedown = RWSet[bytes]().remove("B", b"key")
    upload = RWSet[bytes]().add("A", b"key")
    assert b"key" not in takedown.merge(upload)
    assert b"key" not in upload.merge(takedown)


@pytest.mark.parametrize(
    ("kind", "survives"), [(ORSET, True), (RWSET, False)], ids=["orset", "rwset"]
)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_concurrent_add_and_remove_after_any_history(kind, survives: bool, data) -> None:
    """Whatever came before, an add concurrent with a remove: OR-Set keeps, RW-set drops."""
    history = run_history(data, kind, ship_deltas=data.draw(st.booleans()), max_steps=20)
    states = final_exchange(data, kind, history.states)
    element = data.draw(st.sampled_from([b"a", b"b", b"c", b"d"]))
    remover, adder = states[0], states[1]
    remover = remover.remove(element) if kind is ORSET else remover.remove("node-0", element)
    adder = adder.add("node-1", element)
    assert (element in remover.merge(adder)) is survives
    assert (element in adder.merge(remover)) is survives


def test_decode_refuses_dots_outside_the_context() -> None:
    good = ORSet[bytes]().add("A", b"x")
    context, _ = good.to_obj()
    forged = [context, [[b"y", [["A", 7]]]]]
    with pytest.raises(DecodeError, match="not in the causal context"):
        ORSet.from_obj(forged, decode_bytes)
    with pytest.raises(DecodeError, match="twice"):
        ORSet.from_obj([context, [[b"x", [["A", 1]]], [b"x", [["A", 1]]]]], decode_bytes)
    with pytest.raises(DecodeError, match="no dots"):
        ORSet.from_obj([context, [[b"x", []]]], decode_bytes)
    with pytest.raises(DecodeError):
        RWSet.from_obj([context, [], [[b"x", [["B", 1]]]]], decode_bytes)
    assert ORSet.from_wire(good.to_wire(), decode_bytes) == good


def test_causal_context_compaction() -> None:
    ctx = CausalContext.of([Dot("A", 3), Dot("A", 1), Dot("B", 2)])
    assert ctx.vv.to_obj() == {"A": 1} and ctx.cloud == {Dot("A", 3), Dot("B", 2)}
    ctx = ctx.add([Dot("A", 2), Dot("B", 1)])
    assert ctx.vv.to_obj() == {"A": 3, "B": 2} and ctx.cloud == frozenset()
    assert ctx.next_dot("A") == Dot("A", 4)
    assert CausalContext.of([Dot("C", 5)]).next_dot("C") == Dot("C", 6)
    assert CausalContext.from_wire(ctx.to_wire()) == ctx


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    for decode in (
        lambda d: ORSet.from_wire(d, decode_bytes),
        lambda d: RWSet.from_wire(d, decode_bytes),
        lambda d: GSet.from_wire(d, decode_bytes),
        CausalContext.from_wire,
    ):
        try:
            decode(data)
        except DecodeError:
            pass
