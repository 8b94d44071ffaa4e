"""`meshkp config check FILE`: exit 0 and one line for a valid file, 1 and every error otherwise."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from tests.integration.conftest import FIXTURES


def check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    return result.exit_code, result.output


def test_a_valid_file_gives_one_summary_line() -> None:
    code, output = check(FIXTURES / "seed-config.toml")
    assert code == 0
    assert output.count("\n") == 1
    assert output.startswith(f"{FIXTURES / 'seed-config.toml'}: valid, 14 keys set (mesh on, "
                             "discovery static, 2 peers;")


def test_unused_mesh_keys_are_named_in_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "alone.toml"
    path.write_text('[cluster]\nenabled = false\n[cluster.discovery]\npeers = ["10.0.0.2:7946"]\n')
    code, output = check(path)
    assert code == 0 and "mesh off; 1 mesh key unused while enabled = false" in output


def test_an_invalid_file_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[hkp]\nport = "x"\n\n[log]\nlevel = "loud"\n')
    code, output = check(path)
    assert code == 1
    lines = output.splitlines()
    assert lines[0].startswith(f"{path}:2: [hkp] port: expected an integer")
    assert lines[1].startswith(f"{path}:5: [log] level: expected one of")
    assert lines[2] == f"{path}: 2 errors"


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    code, output = check(tmp_path / "nope.toml")
    assert code == 1 and "cannot read the config file: No such file or directory" in output
