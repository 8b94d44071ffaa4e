"""`meshkp admins list|add|remove`: named admin tokens, kept hashed in the cluster policy.

Any node accepts a named admin's token, and the audit trail names that admin. Adding one goes
through the control plane's log; only the token's SHA-256 is replicated.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from cli.node_client import call, call_ok, find_token, node_option, read_token, token_options


@click.group("admins", invoke_without_command=True)
@node_option
@token_options
@click.pass_context
def admins(ctx: click.Context, node_url: str, token_file: Path | None, data_dir: Path | None) -> None:
    """List the named admins of the cluster policy (`add NAME`, `remove NAME` change them)."""
    if ctx.invoked_subcommand is not None:
        return
    body = call_ok(node_url, "GET", "/cluster/admins", token=find_token(token_file, data_dir))
    if not body["admins"]:
        click.echo("no named admins")
    for admin in body["admins"]:
        click.echo(f"{admin['name']}  set by {admin['set_by']} ({admin['token']})")


@admins.command("add")
@node_option
@token_options
@click.option("--new-token-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File holding the new admin's token (e.g. from `openssl rand -hex 32`).")
@click.argument("name")
def admins_add(node_url: str, token_file: Path | None, data_dir: Path | None,
               new_token_file: Path, name: str) -> None:
    """Give NAME the token in --new-token-file (replaces NAME's earlier token)."""
    _change(node_url, "PUT", name, find_token(token_file, data_dir),
            {"token": read_token(new_token_file)})
    click.echo(f"admin {name} set: every node accepts its token")


@admins.command("remove")
@node_option
@token_options
@click.argument("name")
def admins_remove(node_url: str, token_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Remove the named admin NAME: no node accepts its token once the change applies."""
    _change(node_url, "DELETE", name, find_token(token_file, data_dir), None)
    click.echo(f"admin {name} removed")


def _change(node_url: str, method: str, name: str, token: str, body: object) -> None:
    status, reply = call(node_url, method, f"/cluster/admins/{quote(name, safe='')}", body, token)
    if status != 200:
        raise click.ClickException(f"{method} /cluster/admins/{name} answered {status}: {reply}")
