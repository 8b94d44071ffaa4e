"""CLI admin-token lookup: --token-file, then $MESHKP_ADMIN_TOKEN, then --data-dir/admin.token."""

from pathlib import Path

import click
import pytest

from cli.cluster import TOKEN_ENV, find_token


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
