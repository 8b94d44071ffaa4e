"""The options the operator typed on `meshkp serve`, as the top layer of settings.

Only options given on the command line count (click's `get_parameter_source`): an option left at
its default must not hide what the config file or a MESHKP_* variable says. Each option group
keeps a table next to its options of which config field each option sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click
from click.core import ParameterSource

from meshkp.limits import Limits
from meshkp.node.settings.keys import KEYS_BY_PATH
from meshkp.node.settings.layers import FLAG, Layer, Origin, Problem, Setting


def _same(value: Any) -> object:
    return value


@dataclass(frozen=True, slots=True)
class FlagTarget:
    """The config field (a settings target) that one option sets, and how its value maps."""

    flag: str
    target: str
    convert: Callable[[Any], object] = field(default=_same)


def flag_layer(ctx: click.Context, targets: Mapping[str, FlagTarget]) -> Layer:
    """Settings of the options (by parameter name) that were given on the command line."""
    layer: Layer = {}
    for param, target in targets.items():
        if ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE:
            value = target.convert(ctx.params[param])
            layer[target.target] = Setting(value, Origin(FLAG, target.flag, target.flag))
    return layer


def limit_layer(assignments: tuple[str, ...]) -> tuple[Layer, list[Problem]]:
    """Settings of --limit NAME=VALUE, each VALUE read like the [limits] key of that NAME."""
    layer: Layer = {}
    problems: list[Problem] = []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip().replace("-", "_")
        key = KEYS_BY_PATH.get(f"limits.{name}")
        origin = Origin(FLAG, "--limit", f"--limit {assignment}")
        if not sep or key is None:
            known = ", ".join(Limits.__slots__)
            problems.append(Problem(f"expected NAME=VALUE with NAME one of: {known}", origin))
            continue
        try:
            layer[f"limits.{name}"] = Setting(key.kind.from_text(text), origin)
        except ValueError as exc:
            problems.append(Problem(f"limit {name}: {exc}", origin))
    return layer, problems
