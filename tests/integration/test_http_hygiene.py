"""Connection hygiene and rate limits of a real `meshkp serve`, seen from real clients: a
slowloris client and a flood of stalled uploads from one address (127.0.0.2) stay within their
caps while gpg, from another address, is served (red-team finding 4; issue 12)."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gpgtools import GPG, gnupg_home, gpg
from tests.integration.conftest import ServerProcess, start_server

pytestmark = [pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ATTACKER = "127.0.0.2"  # not a trusted proxy of the test harness: limited like any client
CLIENT_CAP = 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    node = start_server(tmp_path_factory.mktemp("hygiene") / "node",
                        "--limit", f"http_client_connections={CLIENT_CAP}",
                        "--limit", "http_connections=150")
    alice = (FIXTURES / "alice_signed.asc").read_bytes()
    assert node.add(alice).status == 200
    yield node
    node.stop()
    node.assert_no_bugs()


def rss_bytes(server: ServerProcess) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


@contextlib.contextmanager
def connections(server: ServerProcess, count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((ATTACKER, 0))
            sock.connect((server.host, server.port))
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg dirmngr)")
def test_200_slowloris_connections_do_not_stop_gpg(server: ServerProcess) -> None:
    with connections(server, 200) as slow:
        for sock in slow:  # a request head that never ends
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        time.sleep(0.5)
        # The attacker holds its cap, not the node's 150 slots.
        assert server.metric("meshkp_http_connections_open") <= CLIENT_CAP + 2
        assert server.metric('meshkp_http_connections_refused_total{reason="client"}') >= 200 - CLIENT_CAP
        with gnupg_home() as home:
            done = gpg(home, "--keyserver", server.hkp, "--recv-keys",
                       "0x10FE8CF1B483F7525039AA2A361BC1F023E0DCCA", timeout=60)
            assert done.returncode == 0, done.stderr.decode()


def test_stalled_uploads_from_one_client_pin_bounded_memory(server: ServerProcess) -> None:
    """Finding 4: 48 uploads of 8 MiB, each stopped 1 KiB before its end, took a node from 62
    to 452 MiB RSS. Now one client gets at most its connection, buffer and upload-rate caps."""
    size = 8 * 1024 * 1024
    head = (f"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {size}\r\n\r\n").encode()
    chunk = b"keytext=" + b"A" * (size - 1024 - 8)
    before = rss_bytes(server)
    with connections(server, 48) as uploads:
        for sock in uploads:
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                sock.sendall(head + chunk)
        time.sleep(1)
        grown = rss_bytes(server) - before
        assert grown < 100 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
        # Another client is served meanwhile.
        assert server.lookup(op="get", search="alice@example.com").status == 200


@pytest.mark.slow
def test_a_request_head_must_be_complete_within_the_keepalive_timeout(server: ServerProcess) -> None:
    """The head deadline is aiohttp's keep-alive timer (server_limits.py, 15 s), armed at
    connect and after each answer: trickling header lines does not extend it."""
    with connections(server, 2) as (silent, trickling):
        for sock in (silent, trickling):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(0.5)
        began = time.monotonic()
        closed: dict[int, float] = {}
        while len(closed) < 2 and time.monotonic() - began < 40:
            for index, sock in enumerate((silent, trickling)):
                if index in closed:
                    continue
                try:
                    if index:
                        sock.sendall(b"X-Trickle: 1\r\n")
                    if sock.recv(100) == b"":
                        closed[index] = time.monotonic() - began
                except TimeoutError:
                    pass
                except OSError:
                    closed[index] = time.monotonic() - began
        assert sorted(closed) == [0, 1], "a request head that never ends kept its connection"
