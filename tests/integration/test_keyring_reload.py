"""SIGHUP re-reads the cluster key file of a running node: rotation without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, key_id, write_key_file

pytestmark = pytest.mark.integration


def _keyring(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url + "/cluster/status", timeout=10) as reply:
        status = json.loads(reply.read())
    keyring: dict[str, object] = status["membership"]["keyring"] if "membership" in status \
        else status["keyring"]
    return keyring


def _wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_sighup_installs_the_edited_key_file_and_keeps_the_keys_on_a_bad_one(
        tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    key_file = tmp_path / "cluster.key"
    write_key_file(key_file, [old], overwrite=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--mesh", "--data-dir", str(tmp_path / "n"),
         "--host", "127.0.0.1", "--http-port", "0", "--gossip-port", "0",
         "--cluster-key-file", str(key_file), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ")[1].split()[0]
        assert _keyring(url)["primary"] == key_id(old).hex()
        write_key_file(key_file, [new, old], overwrite=True)  # steps 1 and 2 of a rotation
        os.kill(proc.pid, signal.SIGHUP)
        _wait_for(lambda: _keyring(url)["primary"] == key_id(new).hex())
        assert _keyring(url)["keys"] == [key_id(new).hex(), key_id(old).hex()]
        key_file.write_text("not base64 at all\n")
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert _keyring(url)["keys"] == [key_id(new).hex(), key_id(old).hex()]
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
