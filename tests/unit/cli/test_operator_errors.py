"""An operator's mistake gives one clear line and exit 1, never a traceback, on every command
that talks to a node: a missing token file, an unreachable node, a --node that is no URL."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from cli.node_client import NODE_ENV, TOKEN_ENV

# One command line per family (cli/cluster.py, delete.py, control.py, admins.py, lb_config.py,
# backup.py, top/), each with the admin token it needs (if any) given as --token-file TOKEN.
T = ["--token-file", "TOKEN"]
FAMILIES = {
    "cluster": ["join", *T, "127.0.0.1:7946"],
    "members": ["members"],
    "status": ["status"],
    "delete": ["delete", *T, "--reason", "test", "AB" * 20],
    "conflicts": ["conflicts"],
    "sync": ["sync", *T],
    "control": ["policy", "set", *T, "search_results=10"],
    "leader": ["leader"],
    "routing": ["routing", "get"],
    "audit": ["audit"],
    "admins": ["admins", *T],
    "lb-config": ["lb-config", "haproxy"],
    "backup": ["backup", *T, "--out", "OUT"],
}
NEEDS_TOKEN = {"cluster", "delete", "sync", "control", "admins", "backup"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the with ends: nobody listens


def _run(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node: str,
         token: Path) -> tuple[int, str, BaseException | None]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv(NODE_ENV, node)
    given = {"OUT": str(tmp_path / "out.backup"), "TOKEN": str(token)}
    line = [given.get(a, a) for a in args]
    result = CliRunner().invoke(main, line)
    return result.exit_code, result.output, result.exception


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_unreachable_node(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    code, output, exc = _run(FAMILIES[family], tmp_path, monkeypatch,
                             f"http://127.0.0.1:{_closed_port()}", token)
    assert code == 1 and isinstance(exc, SystemExit), output
    assert "cannot reach http://127.0.0.1:" in output and "Traceback" not in output


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_node_that_is_not_a_url(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    code, output, exc = _run(FAMILIES[family], tmp_path, monkeypatch, "127.0.0.1:11371", token)
    assert code == 1 and isinstance(exc, SystemExit), output
    assert "is not a" in output and "URL" in output


@pytest.mark.parametrize("family", sorted(NEEDS_TOKEN))
def test_a_missing_token_file(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, exc = _run(FAMILIES[family], tmp_path, monkeypatch, "http://127.0.0.1:1",
                             tmp_path / "no-such-token")
    assert code == 1 and isinstance(exc, SystemExit), output
    assert "cannot read admin token" in output and "no-such-token" in output


def test_top_once_against_an_unreachable_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NODE_ENV, f"http://127.0.0.1:{_closed_port()}")
    result = CliRunner().invoke(main, ["top", "--once", "--interval", "0.2"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
