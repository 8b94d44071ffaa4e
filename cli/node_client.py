"""Talking to a running node's HTTP API from the CLI: --node, the admin token, JSON calls.

Every command that talks to a node uses these, so they all find the node the same way
(--node URL, else $MESHKP_NODE, else http://127.0.0.1:11371) and the token the same way, and
fail with the same clear messages (no traceback for an operator's mistake).
The admin token is found in this order: --token-file FILE, the MESHKP_ADMIN_TOKEN environment
variable, --data-dir DIR (DIR/admin.token).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from meshkp.http.auth import TOKEN_FILE

TOKEN_ENV = "MESHKP_ADMIN_TOKEN"
NODE_ENV = "MESHKP_NODE"
DEFAULT_NODE = "http://127.0.0.1:11371"
# Seconds to wait for a node's answer. A join resolves names and push-pulls each peer; a
# sync runs whole anti-entropy rounds (a bootstrap of a big store takes minutes).
HTTP_TIMEOUT = 120.0
# Bytes of a reply we read: a 10,000-member /cluster/nodes is ~2 MB.
MAX_REPLY_BYTES = 16 * 1024 * 1024

node_option = click.option("--node", "node_url", default=DEFAULT_NODE, show_default=True,
                           envvar=NODE_ENV, show_envvar=True, metavar="URL",
                           help="HTTP address of a running meshkp node.")


def token_options(command: Any) -> Any:
    """Add --token-file and --data-dir (the admin token sources besides the environment)."""
    command = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                           default=None, help="The node's data dir; reads DIR/admin.token.")(command)
    return click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="File holding the admin token.")(command)


def find_token(token_file: Path | None, data_dir: Path | None) -> str:
    """The admin token from --token-file, $MESHKP_ADMIN_TOKEN or DIR/admin.token."""
    if token_file is not None:
        return read_token(token_file)
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    if data_dir is not None:
        return read_token(data_dir / TOKEN_FILE)
    raise click.UsageError(
        f"this command needs the node's admin token: pass --token-file FILE, set {TOKEN_ENV}, "
        "or pass --data-dir DIR of the node (DIR/admin.token)")


def read_token(path: Path) -> str:
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
    request = _request(node_url, method, path, token, data)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _open(node_url, request) as response:
            status, raw = response.status, response.read(MAX_REPLY_BYTES)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_REPLY_BYTES)
    if status == 401:
        raise click.ClickException(f"{node_url} refused the admin token (401); check which "
                                   "node's admin.token you passed")
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace").strip()


def open_stream(node_url: str, path: str, token: str | None = None) -> Any:
    """A GET whose body is read as it comes (a backup): the open response of a 200, else a
    ClickException with the node's reason."""
    try:
        return _open(node_url, _request(node_url, "GET", path, token, None))
    except urllib.error.HTTPError as exc:
        reason = exc.read(MAX_REPLY_BYTES).decode("utf-8", "replace").strip()
        if exc.code == 401:
            raise click.ClickException(f"{node_url} refused the admin token (401); check which "
                                       "node's admin.token you passed") from None
        raise click.ClickException(f"GET {path} answered {exc.code}: {reason}") from None


def _request(node_url: str, method: str, path: str, token: str | None,
             data: bytes | None) -> urllib.request.Request:
    try:
        request = urllib.request.Request(node_url.rstrip("/") + path, data=data, method=method)
    except ValueError as exc:
        raise click.ClickException(f"--node {node_url!r} is not a URL ({exc}): give the node's "
                                   f"HTTP address, e.g. {DEFAULT_NODE}") from None
    if request.type not in ("http", "https"):
        raise click.ClickException(f"--node {node_url!r} is not an http:// or https:// URL: give "
                                   f"the node's HTTP address, e.g. {DEFAULT_NODE}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _open(node_url: str, request: urllib.request.Request) -> Any:
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach {node_url}: {reason} (is the node running, and "
                                   "is --node its HTTP address?)") from None


def call_ok(node_url: str, method: str, path: str, body: Any = None,
            token: str | None = None) -> Any:
    """`call`, for calls that must succeed: the decoded body of a 2xx, else a ClickException."""
    status, reply = call(node_url, method, path, body, token)
    if not 200 <= status < 300:
        raise click.ClickException(f"{method} {path} answered {status}: {reply}")
    return reply
