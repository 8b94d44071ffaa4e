"""deploy/systemd/meshkp.service and the example deploy/meshkp.toml: systemd-analyze finds
nothing to complain about, the hardening stays in place, and the unit and config agree."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, REPO

UNIT = DEPLOY / "systemd" / "meshkp.service"
EXAMPLE_CONFIG = DEPLOY / "meshkp.toml"
INSTALLED_BINARY = "/opt/meshkp/bin/meshkp"
# systemd-analyze security's score, 0 (locked down) to 10 (unprotected); 1.5 when written.
MAX_EXPOSURE = 2.0
HARDENING = {
    "DynamicUser": "yes", "ProtectSystem": "strict", "StateDirectory": "meshkp",
    "NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
    "ProtectHome": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
}


def unit_lines() -> dict[str, list[str]]:
    """key -> every value it is given in the unit (systemd keys may repeat)."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's meshkp: verify checks it is executable."""
    binary = Path(sys.executable).with_name("meshkp")
    assert binary.exists(), f"{binary}: run make deps"
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    copy = tmp_path / "meshkp.service"
    copy.write_text(text.replace(INSTALLED_BINARY, str(binary)))
    return copy


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return found


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = subprocess.run([systemd_analyze(), "verify", str(local_copy(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and unparsable values, and only warns: both must be empty.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr)


def test_the_exposure_score_stays_low(tmp_path: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(local_copy(tmp_path))],
        capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_unit_is_hardened_and_starts_from_the_config_file() -> None:
    values = unit_lines()
    for key, value in HARDENING.items():
        assert values.get(key) == [value], key
    assert "@system-service" in values["SystemCallFilter"]
    assert set(values["RestrictAddressFamilies"][0].split()) <= {
        "AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert values["ExecStart"] == [f"{INSTALLED_BINARY} serve --config /etc/meshkp/meshkp.toml"]
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert set(parser.sections()) == {"Unit", "Service", "Install"}


def test_the_example_config_is_valid_and_matches_the_unit() -> None:
    result = subprocess.run([sys.executable, "-m", "cli.main", "config", "check",
                             str(EXAMPLE_CONFIG)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    state_dir = unit_lines()["StateDirectory"][0]
    assert config["cluster"]["data_dir"] == f"/var/lib/{state_dir}"
    # The unit hands the key over as a credential named like the file the config names.
    credential = unit_lines()["LoadCredential"][0]
    assert credential == f"cluster.key:{config['cluster']['key_file']}"
