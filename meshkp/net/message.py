"""The base of every typed wire message (SWIM, replication): a TYPE code and a validated map.

A frame carries: version byte, TYPE byte, msgpack map of `to_map()` (meshkp/net/wire.py).
`from_map` validates every field and raises WireError, which the transport counts and drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self


class Message:
    """Subclasses are frozen dataclasses with a TYPE unique within their protocol."""

    __slots__ = ()
    TYPE: ClassVar[int]

    def to_map(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        raise NotImplementedError
