"""Version vectors: which updates of which node a state has seen (Parker et al. 1983).

A `VersionVector` maps node id -> number of that node's updates merged into the state.
Merge is the pointwise max, a join-semilattice. `compare` gives the causal relation of two
states: one saw the other (BEFORE/AFTER), the same updates (EQUAL), or they diverged
(CONCURRENT), which is what turns a delete racing an add into a conflict (DESIGN.md).
Zero entries are never stored, so equal vectors have equal encodings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping

from crdt.encoding import MAX_UINT64, as_dict, as_int, as_node_id, packb, unpackb


class Ordering(enum.Enum):
    """The causal relation of a vector to another: `a.compare(b)`."""

    BEFORE = "before"  # a < b: b has seen everything a has, and more
    AFTER = "after"  # a > b
    EQUAL = "equal"
    CONCURRENT = "concurrent"  # each has seen an update the other has not


class VersionVector:
    """An immutable map node id -> update counter; missing nodes count 0."""

    __slots__ = ("_entries", "_hash")

    _entries: dict[str, int]
    _hash: int | None

    def __init__(
        self, entries: VersionVector | Mapping[str, int] | Iterable[tuple[str, int]] = ()
    ) -> None:
        if isinstance(entries, VersionVector):
            entries = entries._entries
        pairs = entries.items() if isinstance(entries, Mapping) else entries
        clean: dict[str, int] = {}
        for node, counter in pairs:
            if not isinstance(node, str) or not node:
                raise ValueError(f"node id must be a non-empty str, got {node!r}")
            if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
                raise ValueError(f"counter of {node!r} must be an int >= 0, got {counter!r}")
            if counter > MAX_UINT64:
                raise ValueError(f"counter of {node!r} exceeds 2**64-1")
            if counter:
                clean[node] = max(counter, clean.get(node, 0))
        object.__setattr__(self, "_entries", clean)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _trusted(cls, entries: dict[str, int]) -> VersionVector:
        vv = cls.__new__(cls)
        object.__setattr__(vv, "_entries", entries)
        object.__setattr__(vv, "_hash", None)
        return vv

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VersionVector is immutable")

    # -- reading ---------------------------------------------------------------------------
    def get(self, node_id: str) -> int:
        """The counter of `node_id` (0 if never seen)."""
        return self._entries.get(node_id, 0)

    def items(self) -> Iterator[tuple[str, int]]:
        """(node, counter) pairs with counter > 0, sorted by node id."""
        return iter(sorted(self._entries.items()))

    def nodes(self) -> frozenset[str]:
        """The node ids with a counter above zero."""
        return frozenset(self._entries)

    def total(self) -> int:
        """Sum of all counters: the number of updates this vector has seen."""
        return sum(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        """Node ids with a counter above zero, sorted."""
        return iter(sorted(self._entries))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def __bool__(self) -> bool:
        return bool(self._entries)

    # -- the lattice -----------------------------------------------------------------------
    def increment(self, node_id: str) -> VersionVector:
        """This vector with one more update from `node_id`."""
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node id must be a non-empty str, got {node_id!r}")
        entries = dict(self._entries)
        entries[node_id] = entries.get(node_id, 0) + 1
        return VersionVector._trusted(entries)

    def merge(self, other: VersionVector) -> VersionVector:
        """The least upper bound: pointwise max."""
        big, small = self._entries, other._entries
        if len(small) > len(big):
            big, small = small, big
        entries = dict(big)
        for node, counter in small.items():
            if counter > entries.get(node, 0):
                entries[node] = counter
        return VersionVector._trusted(entries)

    def dominates(self, other: VersionVector) -> bool:
        """True if every counter here is >= the other's (self has seen all of other)."""
        mine = self._entries
        return all(mine.get(node, 0) >= counter for node, counter in other._entries.items())

    def compare(self, other: VersionVector) -> Ordering:
        """The causal relation of self to other."""
        self_covers = self.dominates(other)
        other_covers = other.dominates(self)
        if self_covers and other_covers:
            return Ordering.EQUAL
        if self_covers:
            return Ordering.AFTER
        if other_covers:
            return Ordering.BEFORE
        return Ordering.CONCURRENT

    # -- value semantics -------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        cached = self._hash
        if cached is None:
            cached = hash(frozenset(self._entries.items()))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __le__(self, other: VersionVector) -> bool:
        return other.dominates(self)

    def __ge__(self, other: VersionVector) -> bool:
        return self.dominates(other)

    def __repr__(self) -> str:
        inner = ", ".join(f"{node!r}: {counter}" for node, counter in self.items())
        return f"VersionVector({{{inner}}})"

    # -- encoding --------------------------------------------------------------------------
    def to_obj(self) -> dict[str, int]:
        """A plain msgpack-able map, keys in sorted order, for embedding in bigger records."""
        return dict(sorted(self._entries.items()))

    @classmethod
    def from_obj(cls, obj: object) -> VersionVector:
        """Inverse of to_obj; raises DecodeError on any malformed input. Zero entries drop."""
        entries: dict[str, int] = {}
        for node, counter in as_dict(obj, "version vector").items():
            node_id = as_node_id(node, "version vector node")
            value = as_int(counter, f"version vector counter of {node_id!r}")
            if value:
                entries[node_id] = value
        return cls._trusted(entries)

    def to_wire(self) -> bytes:
        """Compact deterministic bytes: a msgpack map sorted by node id."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes) -> VersionVector:
        """Inverse of to_wire; raises DecodeError on malformed bytes."""
        return cls.from_obj(unpackb(data, "version vector"))
