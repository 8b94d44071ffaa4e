"""`meshkp join`, `leave`, `members [remove]`, `status`: talk to a running node's /cluster/* API.

Mutating calls (join, leave) need the node's admin token (cli/node_client.py says where from).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.node_client import call, find_token, node_option, token_options

STATUS_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}


@click.command("join")
@node_option
@token_options
@click.argument("peers", nargs=-1, required=True)
def join(node_url: str, token_file: Path | None, data_dir: Path | None,
         peers: tuple[str, ...]) -> None:
    """Ask the node at --node to join PEERS (HOST:PORT gossip addresses, dns:NAME, srv:NAME)."""
    token = find_token(token_file, data_dir)
    status, body = call(node_url, "POST", "/cluster/join", {"peers": list(peers)}, token)
    if status == 200:
        click.echo(f"joined: {body['joined']} of {len(peers)} peer(s) answered")
        return
    detail = body.get("joined", body) if isinstance(body, dict) else body
    raise click.ClickException(f"join failed ({status}): {detail}")


@click.command("leave")
@node_option
@token_options
def leave(node_url: str, token_file: Path | None, data_dir: Path | None) -> None:
    """Gracefully remove the node at --node from the cluster; the node then exits."""
    token = find_token(token_file, data_dir)
    status, body = call(node_url, "POST", "/cluster/leave", {}, token)
    if status != 202:
        raise click.ClickException(f"leave failed ({status}): {body}")
    click.echo(f"node {body.get('id', '?')} is leaving the cluster and will exit")


@click.group("members", invoke_without_command=True)
@node_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw /cluster/nodes JSON.")
@click.pass_context
def members(ctx: click.Context, node_url: str, as_json: bool) -> None:
    """List the cluster members the node at --node knows, with their status
    (`meshkp members remove ID` removes one from the control plane for good)."""
    if ctx.invoked_subcommand is not None:
        return
    status, body = call(node_url, "GET", "/cluster/nodes")
    if status != 200 or not isinstance(body, dict):
        raise click.ClickException(f"/cluster/nodes answered {status}: {body}")
    if as_json:
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    table = Table(title=f"members seen by {node_url}")
    for column in ("id", "gossip addr", "http", "status", "incarnation"):
        table.add_column(column, justify="right" if column == "incarnation" else "left")
    for node in body.get("nodes", []):
        # Ids, addresses and meta come from gossip: escape them, or "[/]" in one is a MarkupError.
        state = str(node.get("status", "?"))
        ident = str(node.get("id", "?")) + (" *" if node.get("id") == body.get("self") else "")
        table.add_row(escape(ident), escape(str(node.get("addr", ""))),
                      escape(str(node.get("http", ""))),
                      f"[{STATUS_STYLE.get(state, 'white')}]{escape(state)}[/]",
                      escape(str(node.get("incarnation", ""))))
    Console().print(table)


@click.command("status")
@node_option
def status(node_url: str) -> None:
    """Show the node's membership status (id, incarnation, counts, health, frame counters)."""
    code, body = call(node_url, "GET", "/cluster/status")
    if code != 200:
        raise click.ClickException(f"/cluster/status answered {code}: {body}")
    click.echo(json.dumps(body, indent=2, sort_keys=True))


@members.command("remove")
@node_option
@token_options
@click.argument("member")
def members_remove(node_url: str, token_file: Path | None, data_dir: Path | None, member: str) -> None:
    """Remove MEMBER from the control plane for good, through the log. It is refused if it
    comes back: to return, it must start again with an empty data directory."""
    token = find_token(token_file, data_dir)
    code, body = call(node_url, "DELETE", f"/cluster/members/{quote(member, safe='')}", token=token)
    if code != 200:
        raise click.ClickException(f"removing {member} failed ({code}): {body}")
    click.echo(f"{member} removed ({body.get('token')}); it must rejoin with an empty data directory")


@members.command("reset-key")
@node_option
@token_options
@click.option("--key", "key_hex", default="",
              help="Pin this key (64 hex digits: identity.key of the node's `meshkp status`); "
                   "without it every node learns the next key seen with the id.")
@click.argument("member")
def members_reset_key(node_url: str, token_file: Path | None, data_dir: Path | None,
                      key_hex: str, member: str) -> None:
    """Make every node forget the key it pinned for the configured id MEMBER, e.g. after
    `meshkp restore` gave that node a new identity under the same --node-id (audited)."""
    token = find_token(token_file, data_dir)
    code, body = call(node_url, "POST", f"/cluster/members/{quote(member, safe='')}/reset-key",
                      token=token, body={"key": key_hex} if key_hex else {})
    if code != 200:
        raise click.ClickException(f"resetting the key of {member} failed ({code}): {body}")
    pinned = f"pinned to {key_hex[:16]}" if key_hex else "learnt from its next frame"
    click.echo(f"key of {member} reset on every node that applies {body.get('token')}; {pinned}")
