"""Limits: defaults validate, relations are checked, and --limit NAME=VALUE overrides."""

from __future__ import annotations

import pytest

from meshkp.errors import ConfigError
from meshkp.limits import Limits


def test_defaults_validate() -> None:
    Limits().validate()


def test_overrides_set_named_fields() -> None:
    limits = Limits().with_overrides(["sigs_per_component=500", "search-results=20", "uid_bytes=4_096"])
    assert (limits.sigs_per_component, limits.search_results, limits.uid_bytes) == (500, 20, 4096)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("nonsense=1", "NAME one of"),
        ("uid_bytes", "NAME=VALUE"),
        ("uid_bytes=ten", "must be an integer"),
        ("uid_bytes=0", "positive integer"),
        ("packet_bytes=999999999", "must not exceed key_bytes"),
    ],
)
def test_bad_overrides_name_the_problem(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Limits().with_overrides([assignment])


def test_serve_and_load_share_the_limit_option(tmp_path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    for command in ("serve", "load"):
        result = CliRunner().invoke(
            main, [command, "--data-dir", str(tmp_path / command), "--limit", "bogus=1",
                   *(["/dev/null"] if command == "load" else [])],
        )
        assert result.exit_code == 2, (command, result.output)
        assert "NAME one of" in result.output
