"""`meshkp delete`, `meshkp conflicts` and `meshkp sync`: replication admin calls over HTTP.

Mutating calls need the admin token: --token-file FILE, or $MESHKP_ADMIN_TOKEN, or
--data-dir DIR (reads DIR/admin.token), in that order.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

_TIMEOUT_S = 120.0


def _token(token_file: Path | None, data_dir: Path | None) -> str:
    if token_file is not None:
        return token_file.read_text(encoding="ascii").strip()
    env = os.environ.get("MESHKP_ADMIN_TOKEN")
    if env:
        return env.strip()
    if data_dir is not None:
        return (data_dir / "admin.token").read_text(encoding="ascii").strip()
    raise click.UsageError("the admin token is needed: --token-file, $MESHKP_ADMIN_TOKEN or --data-dir")


def _call(method: str, url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{exc.code}: {exc.read().decode(errors='replace').strip()}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


_node = click.option("--node", required=True, metavar="URL", help="A node's HTTP URL.")
_token_file = click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path))
_data_dir = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))


@click.command("delete")
@_node
@_token_file
@_data_dir
@click.option("--reason", required=True, help="Why (kept in the tombstone, shown in conflicts).")
@click.option("--actor", default=lambda: os.environ.get("USER", "admin"), show_default="$USER")
@click.argument("fingerprint")
def delete(node: str, token_file: Path | None, data_dir: Path | None, reason: str, actor: str,
           fingerprint: str) -> None:
    """Delete FINGERPRINT on every node (a tombstone that replicates and wins)."""
    query = urllib.parse.urlencode({"reason": reason, "actor": actor})
    fpr = urllib.parse.quote(fingerprint.replace(" ", ""))
    result = _call("DELETE", f"{node.rstrip('/')}/cluster/keys/{fpr}?{query}",
                   _token(token_file, data_dir))
    state = "deleted" if result["changed"] else "already deleted"
    click.echo(f"{result['fingerprint']}: {state} (vv {result['vv']})")


@click.command("conflicts")
@_node
def conflicts(node: str) -> None:
    """List keys where an upload was concurrent with a delete (delete-wins until resolved)."""
    result = _call("GET", f"{node.rstrip('/')}/cluster/conflicts")
    if not result["conflicts"]:
        click.echo("no conflicts")
    for entry in result["conflicts"]:
        delete_info = entry["delete"]
        click.echo(f"{entry['fingerprint']}  deleted by {delete_info['actor']} "
                   f"({delete_info['reason']}); concurrent adds {entry['concurrent_adds']}")


@click.command("sync")
@_node
@_token_file
@_data_dir
@click.option("--peer", default=None, help="Node id of one peer (default: every live peer).")
@click.option("--repair", is_flag=True, help="Rebuild the Merkle tree from the records first.")
def sync(node: str, token_file: Path | None, data_dir: Path | None, peer: str | None,
         repair: bool) -> None:
    """Run anti-entropy now (POST /cluster/sync, or /cluster/repair with --repair)."""
    base = node.rstrip("/")
    token = _token(token_file, data_dir)
    if repair:
        result = _call("POST", f"{base}/cluster/repair", token)
        click.echo(f"rebuilt: {result['records']} records, {result['tombstones']} tombstones")
        synced = result["synced"]
    else:
        query = "?" + urllib.parse.urlencode({"peer": peer}) if peer else ""
        synced = _call("POST", f"{base}/cluster/sync{query}", token)["synced"]
    for status in synced:
        last = status["last"]
        click.echo(f"{status['node_id']}: {status['last_result']} pulled={last['keys_pulled']} "
                   f"pushed={last['keys_pushed']} bytes_out={last['bytes_sent']} "
                   f"bytes_in={last['bytes_received']}")
