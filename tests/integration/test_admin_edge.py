"""The admin API's edge on a real `meshkp serve`: a separate admin listener (--admin-listen)
takes /cluster/* and /metrics off the HKP port, and SIGHUP re-reads DATA_DIR/admin.token."""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import ServerProcess, start_server
from tests.ports import free_port

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    admin_port = free_port()
    server = start_server(tmp_path_factory.mktemp("admin") / "node",
                          "--admin-listen", f"127.0.0.1:{admin_port}")
    yield server, admin_port
    server.stop()
    server.assert_no_bugs()


def admin_get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    finally:
        conn.close()


def test_the_admin_api_leaves_the_hkp_port(node: tuple[ServerProcess, int]) -> None:
    server, admin_port = node
    token = (server.data_dir / "admin.token").read_text().strip()
    for path in ("/cluster/admins", "/metrics", "/cluster/status"):
        status, text = admin_get(server.port, path, token)
        assert status == 404 and "admin listener" in text, path
        assert admin_get(admin_port, path, token)[0] == 200, path
    # What load balancers probe, and HKP itself, stay on the HKP port.
    for path in ("/pks/health", "/cluster/health", "/pks/lookup?op=stats"):
        assert admin_get(server.port, path)[0] == 200, path


def test_sighup_reloads_the_admin_token(node: tuple[ServerProcess, int]) -> None:
    server, admin_port = node
    token_file = server.data_dir / "admin.token"
    new = secrets.token_hex(32)
    assert admin_get(admin_port, "/cluster/admins", new)[0] == 401
    token_file.write_text(new + "\n")
    os.kill(server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while admin_get(admin_port, "/cluster/admins", new)[0] != 200:
        assert time.monotonic() < deadline, "the new token was never accepted"
        time.sleep(0.05)
    log = server.log_text()
    assert "event=admin_token_reloaded changed=True" in log
    assert new not in log  # tokens are never logged
    # A token with a Unicode space appended is another token (red-team finding 9).
    assert admin_get(admin_port, "/cluster/admins", new + "\u00a0")[0] == 401
