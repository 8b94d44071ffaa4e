"""The last-writer-wins register: the write with the largest (HLC stamp, node id) wins.

HLC stamps follow causality, so a write made after seeing another always wins over it; for
concurrent writes the larger stamp wins and equal stamps fall to the node id (Shapiro et al.
2011, §3.2.1 LWW-Register). Should two writes still tie (one node reusing a stamp, a bug), the
canonical bytes of the value decide, so merge stays commutative and replicas still agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from crdt.encoding import as_list, as_node_id, decode_with, packb, sort_key, unpackb
from crdt.hlc import HLCTimestamp

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class LWWRegister(Generic[V]):
    """An immutable register holding the value of the winning write."""

    value: V
    stamp: HLCTimestamp
    node: str

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node:
            raise ValueError(f"node id must be a non-empty str, got {self.node!r}")

    def _rank(self) -> tuple[HLCTimestamp, str, bytes]:
        return (self.stamp, self.node, sort_key(self.value))

    def assign(self, value: V, stamp: HLCTimestamp, node: str) -> LWWRegister[V]:
        """This register after a write by `node` at `stamp` (kept only if it wins)."""
        return self.merge(LWWRegister(value, stamp, node))

    def merge(self, other: LWWRegister[V]) -> LWWRegister[V]:
        """The winning write of the two."""
        return self if self._rank() >= other._rank() else other

    def to_obj(self) -> list[object]:
        """[value, stamp, node]."""
        return [self.value, self.stamp.to_obj(), self.node]

    @classmethod
    def from_obj(cls, obj: object, decode_value: Callable[[object], V]) -> LWWRegister[V]:
        """Inverse of to_obj; raises DecodeError."""
        value, stamp, node = as_list(obj, "lww register", 3)
        return cls(
            decode_with(decode_value, value, "lww value"),
            HLCTimestamp.from_obj(stamp),
            as_node_id(node, "lww node"),
        )

    def to_wire(self) -> bytes:
        """Deterministic bytes."""
        return packb(self.to_obj())

    @classmethod
    def from_wire(cls, data: bytes, decode_value: Callable[[object], V]) -> LWWRegister[V]:
        """Inverse of to_wire; raises DecodeError."""
        return cls.from_obj(unpackb(data, "lww register"), decode_value)
