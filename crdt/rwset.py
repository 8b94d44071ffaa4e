"""The remove-wins set, for takedowns: a remove beats every add it did not see, and those it did.

Each element keeps the dots of its latest adds and of its latest removes, under one causal
context (crdt.dots). An add or a remove supersedes the observed dots of both kinds, so a later
add after seeing a remove brings the element back. An element is present when it has add dots
and no remove dots; a remove concurrent with an add leaves both dots alive, so the element is
absent: remove wins (Bieniusa et al. 2012, §4, "remove-wins" variant). Unlike the OR-Set, a
removed element keeps its remove dot: that is the point of a takedown, and it also lets a
takedown arrive before the key it removes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from crdt.dots import (
    EMPTY_DOTS,
    CausalContext,
    Dot,
    dot_map_from_obj,
    dot_map_to_obj,
    join_dot_maps,
)
from crdt.encoding import as_list, packb, sort_key, unpackb

E = TypeVar("E", bound=Hashable)


class RWSet(Generic[E]):
    """An immutable remove-wins set; elements must be hashable msgpack-encodable values."""

    __slots__ = ("_adds", "_removes", "_context")

    _adds: dict[E, frozenset[Dot]]
    _removes: dict[E, frozenset[Dot]]
    _context: CausalContext

    def __init__(self) -> None:
        object.__setattr__(self, "_adds", {})
        object.__setattr__(self, "_removes", {})
        object.__setattr__(self, "_context", CausalContext())

    @classmethod
    def _make(
        cls,
        adds: dict[E, frozenset[Dot]],
        removes: dict[E, frozenset[Dot]],
        context: CausalContext,
    ) -> RWSet[E]:
        state: RWSet[E] = cls.__new__(cls)
        object.__setattr__(state, "_adds", adds)
        object.__setattr__(state, "_removes", removes)
        object.__setattr__(state, "_context", context)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("RWSet is immutable")

    # -- reading ---------------------------------------------------------------------------
    def elements(self) -> frozenset[E]:
        """Elements with a surviving add and no surviving remove."""
        return frozenset(e for e in self._adds if e not in self._removes)

    def removed(self) -> frozenset[E]:
        """Elements with a surviving remove (taken down), whether or not an add raced it."""
        return frozenset(self._removes)

    def __contains__(self, element: object) -> bool:
        return element in self._adds and element not in self._removes

    def __len__(self) -> int:
        return sum(1 for e in self._adds if e not in self._removes)

    def __iter__(self) -> Iterator[E]:
        """Present elements in canonical order."""
        return iter(sorted(self.elements(), key=sort_key))

    def add_dots(self, element: E) -> frozenset[Dot]:
        """The surviving add events of `element`."""
        return self._adds.get(element, EMPTY_DOTS)

    def remove_dots(self, element: E) -> frozenset[Dot]:
        """The surviving remove events of `element` (non-empty means taken down)."""
        return self._removes.get(element, EMPTY_DOTS)

    @property
    def context(self) -> CausalContext:
        """Every dot this state has seen."""
        return self._context

    # -- mutators --------------------------------------------------------------------------
    def _delta(self, node: str, element: E, *, remove: bool) -> RWSet[E]:
        dot = self._context.next_dot(node)
        observed = (*self.add_dots(element), *self.remove_dots(element))
        fresh = {element: frozenset((dot,))}
        context = CausalContext.of((*observed, dot))
        if remove:
            return RWSet._make({}, fresh, context)
        return RWSet._make(fresh, {}, context)

    def add_delta(self, node: str, element: E) -> RWSet[E]:
        """The delta of `node` adding `element`, superseding the adds and removes seen here."""
        return self._delta(node, element, remove=False)

    def remove_delta(self, node: str, element: E) -> RWSet[E]:
        """The delta of `node` removing `element`; it wins against adds it has not seen."""
        return self._delta(node, element, remove=True)

    def add(self, node: str, element: E) -> RWSet[E]:
        """This set after `node` adds `element`."""
        return self.merge(self.add_delta(node, element))

    def remove(self, node: str, element: E) -> RWSet[E]:
        """This set after `node` removes `element` (also if it was never added)."""
        return self.merge(self.remove_delta(node, element))

    def merge(self, other: RWSet[E]) -> RWSet[E]:
        """The join of both states (dot-map join for adds and removes under one context)."""
        mine, theirs = self._context, other._context
        return RWSet._make(
            join_dot_maps(self._adds, mine, other._adds, theirs),
            join_dot_maps(self._removes, mine, other._removes, theirs),
            mine.merge(theirs),
        )

    # -- value semantics and encoding ------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RWSet):
            return NotImplemented
        return (
            self._context == other._context
            and self._adds == other._adds
            and self._removes == other._removes
        )

    def __hash__(self) -> int:
        return hash(
            (self._context, frozenset(self._adds.items()), frozenset(self._removes.items()))
        )

    def __repr__(self) -> str:
        return f"RWSet({list(self)!r}, removed={sorted(self._removes, key=sort_key)!r})"

    def to_obj(self) -> list[object]:
        """[context, add entries, remove entries], each in canonical order."""
        return [self._context.to_obj(), dot_map_to_obj(self._adds), dot_map_to_obj(self._removes)]

    @classmethod
    def from_obj(cls, obj: object, decode_element: Callable[[object], E]) -> RWSet[E]:
        """Inverse of to_obj; raises DecodeError if malformed or a dot is outside the context."""
        raw_context, raw_adds, raw_removes = as_list(obj, "remove-wins set", 3)
        context = CausalContext.from_obj(raw_context)
        adds = dot_map_from_obj(raw_adds, decode_element, context, "rw-set adds")
        removes = dot_map_from_obj(raw_removes, decode_element, context, "rw-set removes")
        return cls._make(adds, removes, context)

    def to_wire(self) -> bytes:
        """Deterministic bytes."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes, decode_element: Callable[[object], E]) -> RWSet[E]:
        """Inverse of to_wire; raises DecodeError."""
        return cls.from_obj(unpackb(data, "remove-wins set"), decode_element)
