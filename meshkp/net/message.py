"""The base of every typed wire message (SWIM, replication): a TYPE code and a validated map.

A frame carries: version byte, TYPE byte, msgpack map of `to_map()` (meshkp/net/wire.py).
`from_map` validates every field and raises WireError, which the transport counts and drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from meshkp.errors import WireError


class Message:
    """Subclasses are frozen dataclasses with a TYPE unique within their protocol."""

    __slots__ = ()
    TYPE: ClassVar[int]

    def to_map(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Self:
        raise NotImplementedError


M = TypeVar("M", bound=Message)


def decode_typed(types: Mapping[int, type[M]], type_code: object, body: object, protocol: str) -> M:
    """The `protocol` message of a frame's type byte and decoded map; WireError if either is bad.

    A peer's bytes can take any shape: every failure of `from_map` becomes a WireError, which the
    transport counts and drops, never an exception of another type.
    """
    cls = types.get(type_code) if isinstance(type_code, int) else None
    if cls is None:
        raise WireError(f"unknown message type {type_code!r}: not a {protocol} message")
    try:
        return cls.from_map(body)  # type: ignore[arg-type]
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # hostile shapes
        raise WireError(f"invalid {cls.__name__}: {exc}") from exc
