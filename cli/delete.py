"""`meshkp delete`, `meshkp conflicts` and `meshkp sync`: replication admin calls over HTTP.

Mutating calls need the node's admin token (cli/node_client.py says where it is looked for).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from urllib.parse import quote

import click

from cli.node_client import call, call_ok, find_token, node_option, token_options


@click.command("delete")
@node_option
@token_options
@click.option("--reason", required=True, help="Why (kept in the tombstone, shown in conflicts).")
@click.option("--actor", default=lambda: os.environ.get("USER", "admin"), show_default="$USER")
@click.argument("fingerprint")
def delete(node_url: str, token_file: Path | None, data_dir: Path | None, reason: str, actor: str,
           fingerprint: str) -> None:
    """Delete FINGERPRINT on every node (a tombstone that replicates and wins)."""
    token = find_token(token_file, data_dir)
    query = urllib.parse.urlencode({"reason": reason, "actor": actor})
    fpr = urllib.parse.quote(fingerprint.replace(" ", ""))
    result = call_ok(node_url, "DELETE", f"/cluster/keys/{fpr}?{query}", token=token)
    state = "deleted" if result["changed"] else "already deleted"
    click.echo(f"{result['fingerprint']}: {state} (vv {result['vv']})")


@click.group("conflicts", invoke_without_command=True)
@node_option
@click.pass_context
def conflicts(ctx: click.Context, node_url: str) -> None:
    """List keys where an upload was concurrent with a delete, with their ids and the rule that
    applies (`meshkp conflicts resolve ID --keep delete|update` decides one by hand)."""
    if ctx.invoked_subcommand is None:
        _list_conflicts(node_url)


@conflicts.command("list")
@node_option
def conflicts_list(node_url: str) -> None:
    """List the conflicts (the same as `meshkp conflicts` alone)."""
    _list_conflicts(node_url)


def _list_conflicts(node_url: str) -> None:
    result = call_ok(node_url, "GET", "/cluster/conflicts")
    if not result["conflicts"]:
        click.echo("no conflicts")
    for entry in result["conflicts"]:
        delete_info = entry["delete"]
        click.echo(f"{entry.get('id', '?')}  {entry['fingerprint']}  deleted by "
                   f"{delete_info['actor']} ({delete_info['reason']}); concurrent adds "
                   f"{entry['concurrent_adds']}; rule {entry.get('policy', '?')}")


@conflicts.command("resolve")
@node_option
@token_options
@click.option("--keep", type=click.Choice(["delete", "update"]), required=True,
              help="delete: the tombstone stands; update: the key comes back with its packets.")
@click.argument("conflict_id")
def conflicts_resolve(node_url: str, token_file: Path | None, data_dir: Path | None, keep: str,
                      conflict_id: str) -> None:
    """Decide conflict CONFLICT_ID through the control plane's log: every node applies it, and a
    later sync does not reopen it."""
    token = find_token(token_file, data_dir)
    status, body = call(node_url, "POST", f"/cluster/conflicts/{quote(conflict_id, safe='')}/resolve",
                        {"keep": keep}, token)
    if status != 200 or not isinstance(body, dict):
        raise click.ClickException(f"resolving {conflict_id} failed ({status}): {body}")
    click.echo(f"{body['fingerprint']}: keep {body['keep']} ({body['token']})")


@click.command("sync")
@node_option
@token_options
@click.option("--peer", default=None, help="Node id of one peer (default: every live peer).")
@click.option("--repair", is_flag=True, help="Rebuild the Merkle tree from the records first.")
def sync(node_url: str, token_file: Path | None, data_dir: Path | None, peer: str | None,
         repair: bool) -> None:
    """Run anti-entropy now (POST /cluster/sync, or /cluster/repair with --repair)."""
    token = find_token(token_file, data_dir)
    if repair:
        result = call_ok(node_url, "POST", "/cluster/repair", token=token)
        click.echo(f"rebuilt: {result['records']} records, {result['tombstones']} tombstones")
        synced = result["synced"]
    else:
        query = "?" + urllib.parse.urlencode({"peer": peer}) if peer else ""
        synced = call_ok(node_url, "POST", f"/cluster/sync{query}", token=token)["synced"]
    for status in synced:
        last = status["last"]
        click.echo(f"{status['node_id']}: {status['last_result']} pulled={last['keys_pulled']} "
                   f"pushed={last['keys_pushed']} bytes_out={last['bytes_sent']} "
                   f"bytes_in={last['bytes_received']}")
