"""`--limit NAME=VALUE`: one option shared by `serve` and `load`, so both normalise alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from meshkp.errors import ConfigError
from meshkp.limits import Limits

F = TypeVar("F", bound=Callable[..., object])


def limit_option(command: F) -> F:
    """Add a repeatable --limit NAME=VALUE (passed as `limit_overrides`)."""
    return click.option(
        "--limit", "limit_overrides", multiple=True, metavar="NAME=VALUE",
        help="Set any limit of docs/configuration.md, e.g. --limit sigs_per_component=500 "
             "(repeatable). Use the same limits as the nodes that serve this data.",
    )(command)


def apply_limit_overrides(limits: Limits, overrides: tuple[str, ...]) -> Limits:
    """`limits` with the --limit assignments applied; a usage error naming the bad one."""
    try:
        return limits.with_overrides(overrides) if overrides else limits
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
