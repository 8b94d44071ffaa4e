"""A node whose data dir fills up: uploads get 507 with the reason, reads go on, the log says
it once, and writes are taken again once space returns (nothing acknowledged is lost).

The data dir is a 1 MiB tmpfs mounted for the test (root only; skipped otherwise), so the disk
really fills: LevelDB's own writes get ENOSPC, as on a full volume in production.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.conftest import ServerProcess, start_server
from tests.integration.replication_mesh import armored, fingerprint

pytestmark = pytest.mark.integration

SEED = b"disk-full"
# A 1 MiB disk holds a few hundred of these keys; the bound stops a node that never fills.
MAX_UPLOADS = 2000


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/node on its own 1 MiB tmpfs (the server log stays outside it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the data dir")
    where = tmp_path / "node"
    where.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def add(server: ServerProcess, index: int) -> tuple[int, str]:
    body = ("keytext=" + quote(armored(index, SEED), safe="")).encode()
    reply = server.request("POST", "/pks/add", body=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    return reply.status, reply.text


def test_a_full_disk_refuses_uploads_with_507_and_recovers(small_disk: Path) -> None:
    server = start_server(small_disk, "--no-access-log")
    try:
        acked, refused = [], []
        for index in range(MAX_UPLOADS):
            status, text = add(server, index)
            if status == 200:
                acked.append(index)
            else:
                refused.append((status, text))
                if len(refused) >= 20:
                    break
        assert acked and len(refused) == 20, f"the disk never filled: {len(acked)} acked"
        statuses = {status for status, _ in refused}
        assert statuses == {507}, refused[:3]
        assert "disk" in refused[0][1] and "full" in refused[0][1] and "free space" in refused[0][1]
        # Reads are still served, from what was stored.
        first = server.request("GET", f"/pks/lookup?op=get&search=0x{fingerprint(acked[0], SEED)}")
        assert first.status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in first.body
        assert server.request("GET", "/pks/health").status == 200

        # Space returns: the next uploads are taken without a restart.
        assert _mount("-o", "remount,size=32m", str(small_disk)).returncode == 0
        back = [add(server, MAX_UPLOADS + k)[0] for k in range(5)]
        assert back == [200] * 5
        log = server.log_path.read_text()
        # One line when it filled and one when it recovered, not one (or three) per refusal.
        assert log.count("event=store_full") == 1, log.count("event=store_full")
        assert "event=store_space_recovered" in log
        assert "event=store_commit_failed" not in log and "event=http_error" not in log
    finally:
        server.stop()

    # Nothing acknowledged was lost: a restart serves every acked key.
    server = start_server(small_disk, "--no-access-log")
    try:
        health = server.request("GET", "/pks/health").json()
        assert isinstance(health, dict) and health["keys"] == len(acked) + 5
        for index in (acked[0], acked[-1]):
            assert server.request(
                "GET", f"/pks/lookup?op=get&search=0x{fingerprint(index, SEED)}").status == 200
    finally:
        server.stop()
