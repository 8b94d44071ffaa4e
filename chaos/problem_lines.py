"""One line per kind of anomaly a checker found: how many, what, and the first few of them.

The checkers (chaos/checker.py, chaos/control_checker.py, chaos/invariants.py) each list their
findings this way, so a failing run reads the same whichever found it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

HEAD = 5  # findings shown per line: enough to start from, short enough to read

Found = Mapping[str, object] | Sequence[object]


def head(found: Found) -> object:
    if isinstance(found, Mapping):
        return dict(list(found.items())[:HEAD])
    return list(found[:HEAD])


def problem_lines(checks: Iterable[tuple[str, Found]]) -> list[str]:
    """`(what, found)` pairs -> "N what: first few" for each `found` that is not empty."""
    return [f"{len(found)} {what}: {head(found)}" for what, found in checks if found]
