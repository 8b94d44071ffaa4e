"""Settings: config values by target field, each with where it came from.

Three sources give settings: the config file, the `MESHKP_*` environment and the flags the
operator typed. Each becomes one layer (target -> Setting); `merge` lays them over each other,
later layers winning, and the defaults of the config dataclasses fill in the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FILE, ENV, FLAG = "file", "environment", "command line"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one value came from: a key of a file (with its line), a variable, or a flag."""

    source: str  # FILE, ENV or FLAG
    # The file's path, the variable's name or the flag.
    name: str
    # How the operator wrote the setting: "[hkp] port", "MESHKP_HKP_PORT", "--http-port".
    label: str
    line: int | None = None

    @property
    def where(self) -> str:
        if self.source == FILE:
            return f"{self.name}:{self.line}" if self.line is not None else self.name
        return self.source

    def describe(self, message: str) -> str:
        """One error line: where, what, and the message."""
        return f"{self.where}: {self.label}: {message}"


@dataclass(frozen=True, slots=True)
class Setting:
    value: object
    origin: Origin


Layer = dict[str, Setting]


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid setting; `origin` is None only for a file that could not be read at all."""

    message: str
    origin: Origin | None = None

    @property
    def line(self) -> int:
        """The file line of the problem (0 when it has none): problems are listed in line order."""
        return (self.origin.line or 0) if self.origin is not None else 0

    def __str__(self) -> str:
        return self.origin.describe(self.message) if self.origin else self.message


def merge(layers: Iterable[Mapping[str, Setting]]) -> Layer:
    """One layer from several, lowest precedence first: a later layer's setting wins."""
    merged: Layer = {}
    for layer in layers:
        merged.update(layer)
    return merged
