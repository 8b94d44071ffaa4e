"""The add-wins observed-remove set without tombstones (ORSWOT).

Each present element carries the dots of the adds that put it there; the set carries one
causal context of every dot it has seen (crdt.dots). A remove drops the element's dots from
the store but keeps them in the context, so no per-element tombstone remains: the context
alone says "seen and removed" (Bieniusa et al., "An optimized conflict-free replicated set",
2012; Riak's ORSWOT). An add concurrent with a remove carries a dot the remover never saw,
so it survives the merge: add wins.

Every mutator has a `_delta` form returning the small state that, merged anywhere, has the
same effect (delta-state CRDTs, Almeida et al. 2018); the plain form is `merge(delta)`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
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


class ORSet(Generic[E]):
    """An immutable add-wins set; elements must be hashable msgpack-encodable values."""

    __slots__ = ("_entries", "_context")

    _entries: dict[E, frozenset[Dot]]
    _context: CausalContext

    def __init__(self) -> None:
        object.__setattr__(self, "_entries", {})
        object.__setattr__(self, "_context", CausalContext())

    @classmethod
    def _make(cls, entries: dict[E, frozenset[Dot]], context: CausalContext) -> ORSet[E]:
        state: ORSet[E] = cls.__new__(cls)
        object.__setattr__(state, "_entries", entries)
        object.__setattr__(state, "_context", context)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ORSet is immutable")

    # -- reading ---------------------------------------------------------------------------
    def elements(self) -> frozenset[E]:
        """The present elements."""
        return frozenset(self._entries)

    def __contains__(self, element: object) -> bool:
        return element in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[E]:
        """Present elements in canonical (encoded-bytes) order, the same on every node."""
        return iter(sorted(self._entries, key=sort_key))

    def dots(self, element: E) -> frozenset[Dot]:
        """The add events that keep `element` present (empty if absent)."""
        return self._entries.get(element, EMPTY_DOTS)

    @property
    def context(self) -> CausalContext:
        """Every dot this state has seen, present or removed."""
        return self._context

    # -- mutators --------------------------------------------------------------------------
    def add_delta(self, node: str, element: E) -> ORSet[E]:
        """The delta of `node` adding `element`: a fresh dot that supersedes the observed ones."""
        dot = self._context.next_dot(node)
        observed = self.dots(element)
        return ORSet._make({element: frozenset((dot,))}, CausalContext.of((*observed, dot)))

    def add(self, node: str, element: E) -> ORSet[E]:
        """This set after `node` adds `element`."""
        return self.merge(self.add_delta(node, element))

    def remove_delta(self, element: E) -> ORSet[E]:
        """The delta removing `element` as observed here: its dots, in a context, no entry."""
        return ORSet._make({}, CausalContext.of(self.dots(element)))

    def remove(self, element: E) -> ORSet[E]:
        """This set after removing `element` (a no-op if absent)."""
        return self.merge(self.remove_delta(element))

    def merge(self, other: ORSet[E]) -> ORSet[E]:
        """The join: concurrent adds survive removes that did not see them."""
        entries = join_dot_maps(self._entries, self._context, other._entries, other._context)
        return ORSet._make(entries, self._context.merge(other._context))

    # -- value semantics and encoding ------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        return self._context == other._context and self._entries == other._entries

    def __hash__(self) -> int:
        return hash((self._context, frozenset(self._entries.items())))

    def __repr__(self) -> str:
        return f"ORSet({list(self)!r}, context={self._context!r})"

    def to_obj(self) -> list[object]:
        """[context, [[element, [dot, ...]], ...]], elements in canonical order."""
        return [self._context.to_obj(), dot_map_to_obj(self._entries)]

    @classmethod
    def from_obj(cls, obj: object, decode_element: Callable[[object], E]) -> ORSet[E]:
        """Inverse of to_obj; raises DecodeError if malformed or a dot is outside the context."""
        raw_context, raw_entries = as_list(obj, "or-set", 2)
        context = CausalContext.from_obj(raw_context)
        entries = dot_map_from_obj(raw_entries, decode_element, context, "or-set entries")
        return cls._make(entries, context)

    def to_wire(self) -> bytes:
        """Deterministic bytes: equal states encode equally whatever the operation order."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes, decode_element: Callable[[object], E]) -> ORSet[E]:
        """Inverse of to_wire; raises DecodeError."""
        return cls.from_obj(unpackb(data, "or-set"), decode_element)


def orset_of(node: str, elements: Iterable[E]) -> ORSet[E]:
    """A set holding `elements`, each added once by `node` (a convenience for callers/tests)."""
    state: ORSet[E] = ORSet()
    for element in elements:
        state = state.add(node, element)
    return state
