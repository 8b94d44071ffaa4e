"""Majority formulas as free functions (tested with tables in tests/unit/control/test_quorum.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T", int, float)


def majority(voters: int) -> int:
    """Votes needed among `voters`: more than half (Raft §5.2)."""
    return voters // 2 + 1


def quorum_value(values: Sequence[T]) -> T:
    """The largest x such that a majority of `values` are >= x.

    Over match indexes it is the highest index a majority holds (what may be committed,
    Raft §5.3); over acknowledged send times it is the latest instant a majority confirmed
    (where the leader lease starts). `values` has one element per voter, never empty.
    """
    if not values:
        raise ValueError("quorum_value needs one value per voter, got none")
    ordered = sorted(values, reverse=True)
    return ordered[majority(len(ordered)) - 1]


def has_majority(granted: Iterable[str], voters: frozenset[str]) -> bool:
    """Whether the ids in `granted` that are voters form a majority of `voters`."""
    return len(voters.intersection(granted)) >= majority(len(voters))
