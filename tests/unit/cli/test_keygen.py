"""`meshkp keygen`: creates a 0600 key file, refuses to clobber, appends for rotation."""

import os
import stat
from pathlib import Path

from click.testing import CliRunner

from cli.keygen import keygen
from meshkp.net.crypto import load_keyring, parse_key_file


def test_keygen_creates_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    runner = CliRunner()
    result = runner.invoke(keygen, [str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    original = path.read_text()
    assert len(parse_key_file(original)) == 1
    assert parse_key_file(original)[0].hex() not in result.output  # never print the key

    again = runner.invoke(keygen, [str(path)])
    assert again.exit_code != 0 and "--force" in again.output
    assert path.read_text() == original

    forced = runner.invoke(keygen, [str(path), "--force"])
    assert forced.exit_code == 0 and path.read_text() != original


def test_keygen_append_adds_a_secondary_key(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    runner = CliRunner()
    assert runner.invoke(keygen, [str(path)]).exit_code == 0
    primary = load_keyring(path).primary_id
    result = runner.invoke(keygen, [str(path), "--append"])
    assert result.exit_code == 0, result.output
    ring = load_keyring(path)
    assert len(ring.key_ids) == 2 and ring.primary_id == primary  # primary unchanged
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
