"""The grow-only set: merge is union (Shapiro et al., "A comprehensive study of CRDTs", §3.3.1).

The key record's packet sets are G-Sets: a packet once seen is never unseen by merge
(deletion is the record's tombstone, not a set remove).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from crdt.encoding import as_list, decode_with, packb, sort_key, unpackb
from crdt.errors import DecodeError

E = TypeVar("E", bound=Hashable)


class GSet(Generic[E]):
    """An immutable grow-only set of hashable msgpack-encodable elements."""

    __slots__ = ("_items",)

    _items: frozenset[E]

    def __init__(self, elements: Iterable[E] = ()) -> None:
        object.__setattr__(self, "_items", frozenset(elements))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("GSet is immutable")

    def elements(self) -> frozenset[E]:
        """The elements."""
        return self._items

    def __contains__(self, element: object) -> bool:
        return element in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[E]:
        """Elements in canonical order."""
        return iter(sorted(self._items, key=sort_key))

    def add(self, element: E) -> GSet[E]:
        """This set with `element`."""
        if element in self._items:
            return self
        return GSet(self._items | {element})

    def merge(self, other: GSet[E]) -> GSet[E]:
        """Union."""
        if other._items <= self._items:
            return self
        return GSet(self._items | other._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GSet):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"GSet({list(self)!r})"

    def to_obj(self) -> list[object]:
        """The elements as a list in canonical order."""
        return list(self)

    @classmethod
    def from_obj(cls, obj: object, decode_element: Callable[[object], E]) -> GSet[E]:
        """Inverse of to_obj; raises DecodeError on malformed input or duplicates."""
        raw = as_list(obj, "g-set")
        items = [decode_with(decode_element, item, "g-set element") for item in raw]
        result = cls(items)
        if len(result) != len(raw):
            raise DecodeError("g-set: duplicate elements")
        return result

    def to_wire(self) -> bytes:
        """Deterministic bytes."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes, decode_element: Callable[[object], E]) -> GSet[E]:
        """Inverse of to_wire; raises DecodeError."""
        return cls.from_obj(unpackb(data, "g-set"), decode_element)
