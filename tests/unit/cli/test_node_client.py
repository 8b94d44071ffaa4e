"""CLI admin-token lookup: --token-file, then $MESHKP_ADMIN_TOKEN, then --data-dir/admin.token."""

import http.server
import json
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.cluster import members
from cli.node_client import TOKEN_ENV, find_token


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "admin.token").write_text("from-data-dir\n")
    file = tmp_path / "tok"
    file.write_text("  from-file \n")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert find_token(file, tmp_path) == "from-file"
    assert find_token(None, tmp_path) == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert find_token(None, tmp_path) == "from-data-dir"


def test_missing_token_says_where_to_put_it(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(click.UsageError, match="--token-file"):
        find_token(None, None)
    with pytest.raises(click.ClickException, match="cannot read"):
        find_token(None, tmp_path)  # no admin.token there
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(click.ClickException, match="empty"):
        find_token(tmp_path / "empty", None)


def test_members_prints_peer_supplied_strings_verbatim() -> None:
    # Ids, addresses and meta come from gossip: any string. Rich read "[/]" as markup and
    # `meshkp members` died with MarkupError; "[red]" would restyle the table.
    nodes = {"self": "a", "nodes": [
        {"id": "a", "addr": "127.0.0.1:1", "http": "[/]", "status": "alive", "incarnation": 1},
        {"id": "[/]b[red]", "addr": "[x]", "http": "", "status": "[/]", "incarnation": 2},
    ]}
    body = json.dumps(nodes).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(members, ["--node", url], terminal_width=200)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "[/]b[red]" in result.output and "[x]" in result.output
