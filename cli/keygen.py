"""`meshkp keygen`: write a cluster key file (0600), or add a key to one for rotation."""

from __future__ import annotations

from pathlib import Path

import click

from meshkp.errors import ConfigError
from meshkp.net.crypto import (
    generate_key,
    key_id,
    load_keyring,
    parse_key_file,
    write_key_file,
)


@click.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing key file (old keys are lost).")
@click.option(
    "--append",
    "append",
    is_flag=True,
    help="Keep the file's keys and add a new secondary key (rotation step 1).",
)
def keygen(path: Path, force: bool, append: bool) -> None:
    """Write a new cluster key to PATH; copy the file to every node (--cluster-key-file)."""
    try:
        if append:
            keys = parse_key_file(path.read_text(encoding="ascii")) if path.exists() else []
            new = generate_key()
            write_key_file(path, [*keys, new], overwrite=True)
            action = "appended"
        else:
            new = generate_key()
            write_key_file(path, [new], overwrite=force)
            action = "created"
        ring = load_keyring(path)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{action} key {key_id(new).hex()} in {path} (mode 0600); "
        f"keys: {', '.join(ring.key_ids)}; primary: {ring.primary_id}"
    )
    if append:
        click.echo(
            "next: copy the file to every node and restart them; then move the new line to the "
            "top (primary) everywhere; then delete the old line. See docs/cluster-security.md."
        )
