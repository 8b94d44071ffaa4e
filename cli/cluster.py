"""`meshkp join`, `leave`, `members`, `status`: talk to a running node's /cluster/* API.

Mutating calls (join, leave) need the node's admin token, found in this order:
--token-file FILE, the MESHKP_ADMIN_TOKEN environment variable, --data-dir DIR (DIR/admin.token).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

TOKEN_ENV = "MESHKP_ADMIN_TOKEN"
TOKEN_FILE = "admin.token"
DEFAULT_NODE = "http://127.0.0.1:11371"
# Seconds to wait for a node's answer. A join resolves names and push-pulls each peer;
# a leave answers at once (the broadcast runs after the reply).
HTTP_TIMEOUT = 30.0
# Bytes of a reply we read: a 10,000-member /cluster/nodes is ~2 MB.
MAX_REPLY_BYTES = 16 * 1024 * 1024

STATUS_STYLE = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}

node_option = click.option("--node", "node_url", default=DEFAULT_NODE, show_default=True,
                           metavar="URL", help="HTTP address of a running meshkp node.")


def token_options(command: Any) -> Any:
    """Add --token-file and --data-dir (the admin token sources besides the environment)."""
    command = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                           default=None, help="The node's data dir; reads DIR/admin.token.")(command)
    return click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="File holding the admin token.")(command)


def find_token(token_file: Path | None, data_dir: Path | None) -> str:
    """The admin token from --token-file, $MESHKP_ADMIN_TOKEN or DIR/admin.token."""
    if token_file is not None:
        return _read_token(token_file)
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    if data_dir is not None:
        return _read_token(data_dir / TOKEN_FILE)
    raise click.UsageError(
        f"this command needs the node's admin token: pass --token-file FILE, set {TOKEN_ENV}, "
        "or pass --data-dir DIR of the node (DIR/admin.token)")


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read admin token {path}: {exc}") from exc
    if not token:
        raise click.ClickException(f"admin token file {path} is empty")
    return token


def call(node_url: str, method: str, path: str, body: Any = None,
         token: str | None = None) -> tuple[int, Any]:
    """One JSON request to the node; (status, decoded body). Exits with a message if unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(node_url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, raw = response.status, response.read(MAX_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_REPLY_BYTES)
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {node_url}: {exc}") from exc
    if status == 401:
        raise click.ClickException(f"{node_url} refused the admin token (401); check which "
                                   "node's admin.token you passed")
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace").strip()


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


@click.command("members")
@node_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw /cluster/nodes JSON.")
def members(node_url: str, as_json: bool) -> None:
    """List the cluster members the node at --node knows, with their status."""
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
