"""`meshkp config check FILE`: validate a config file and explain each error on its line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from meshkp.errors import InvalidSettings
from meshkp.node.settings.build import Resolved, resolve
from meshkp.node.settings.toml_file import read_config_file


@click.group("config")
def config() -> None:
    """Work with meshkp config files (docs/configuration.md)."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Validate FILE: every error with its line, or a one-line summary.

    Reads FILE as `meshkp serve --config FILE` would, without starting anything. Exit 0 with a
    one-line summary when it is valid; exit 1 listing every error, each as
    FILE:LINE: [table] key: what is wrong. The environment and options are not read.
    """
    layer, problems = read_config_file(file)
    try:
        resolved = resolve(layer, problems)
    except InvalidSettings as exc:
        for error in exc.errors:
            click.echo(error)
        count = len(exc.errors)
        click.echo(f"{file}: {count} error{'s' if count != 1 else ''}", err=True)
        sys.exit(1)
    click.echo(summary(file, len({s.origin for s in layer.values()}), resolved))


def summary(file: Path, keys: int, resolved: Resolved) -> str:
    """One line: the file is valid, how many keys it sets, and what they amount to."""
    config = resolved.config
    notes = []
    if config.membership is not None:
        seeds = len(config.membership.join)
        notes.append(f"mesh on, discovery {config.membership.discovery}, {seeds} peer"
                     f"{'s' if seeds != 1 else ''}")
    else:
        notes.append("mesh off")
    if resolved.unused:
        notes.append(f"{len(resolved.unused)} mesh key{'s' if len(resolved.unused) != 1 else ''} "
                     "unused while enabled = false")
    if resolved.consensus:
        notes.append("[cluster.consensus] checked")
    return f"{file}: valid, {keys} key{'s' if keys != 1 else ''} set ({'; '.join(notes)})"
