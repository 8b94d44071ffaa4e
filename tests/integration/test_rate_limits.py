"""Rate limits of a real `meshkp serve`, with clients on distinct loopback addresses: one over its
rate gets 429 with Retry-After and then a ban (its new connections refused at accept), while
another client is served; the slow test measures the other client's p99 (issue 12)."""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ServerProcess, start_server

pytestmark = [pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
GET = f"/pks/lookup?op=get&search=0x{ALICE}"
ATTACKER, VICTIM = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    node = start_server(tmp_path / "node")
    assert node.add((FIXTURES / "alice_signed.asc").read_bytes()).status == 200
    yield node
    node.stop()
    node.assert_no_bugs()


def get_from(source: str, server: ServerProcess, conn: http.client.HTTPConnection | None = None,
             ) -> tuple[int, dict[str, str], http.client.HTTPConnection, bytes]:
    """One op=get from `source`, on `conn` (kept alive) or a new connection."""
    conn = conn or http.client.HTTPConnection(server.host, server.port, timeout=10,
                                              source_address=(source, 0))
    conn.request("GET", GET)
    reply = conn.getresponse()
    body = reply.read()
    headers = {k.lower(): v for k, v in reply.getheaders()}
    if reply.will_close:
        conn.close()
    return reply.status, headers, conn, body


def test_over_its_rate_a_client_gets_429_then_a_ban_and_another_client_is_served(
        server: ServerProcess) -> None:
    statuses: list[int] = []
    retry_after = None
    conn = None
    deadline = time.monotonic() + 60
    # The get burst is 200; then 429s, and 20 ignored 429s more ban the client. The bucket
    # refills at 20/s meanwhile, so how many requests that takes depends on the machine.
    while True:
        assert time.monotonic() < deadline and len(statuses) < 5000, statuses[-30:]
        try:
            status, headers, conn, body = get_from(ATTACKER, server, conn)
        except (ConnectionError, http.client.HTTPException):
            conn = None
            continue
        statuses.append(status)
        if status == 429 and retry_after is None:
            retry_after = headers.get("retry-after")
        if status != 200:
            conn = None  # a refusal may close the connection
        if b"is banned" in body:
            break
    assert statuses[:200] == [200] * 200
    assert retry_after is not None and int(retry_after) >= 1
    assert server.metric('meshkp_http_bans_total{reason="errors"}') == 1
    # Banned: its next connection is refused at accept.
    assert get_from(ATTACKER, server)[0] == 503
    assert server.metric('meshkp_http_connections_refused_total{reason="banned"}') >= 1
    # Another client is served as before.
    assert get_from(VICTIM, server)[0] == 200


def _latencies(server: ServerProcess, seconds: float) -> list[float]:
    """The victim's op=get latencies at ~10 requests/s (half its rate) on one connection."""
    found: list[float] = []
    conn = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.perf_counter()
        status, _, conn, _ = get_from(VICTIM, server, conn)
        found.append(time.perf_counter() - began)
        assert status == 200
        time.sleep(0.1)
    return found


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


# The other client's flood, in a process of its own (threads here would share this process's
# GIL with the victim's measurements): 4 keep-alive connections for at most 60 s.
FLOOD = """
import http.client, sys, threading, time
host, port, source, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.monotonic() + 60
def one():
    conn = None
    while time.monotonic() < deadline:
        try:
            conn = conn or http.client.HTTPConnection(host, port, timeout=5, source_address=(source, 0))
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            if reply.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            conn = None
threads = [threading.Thread(target=one) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


# Quiet and flooded windows, alternated: a window is ~70 requests, its p99 one of its few
# worst, so a scheduler stall of a loaded 2-core machine (tens of ms, seen at a load average of
# 13 from other work) decided a single pair of 20 s windows either way. The medians of three
# pairs taken side by side compare the two conditions under the same machine load, in the same
# ~45 s as one pair of 20 s windows.
ROUNDS = 3
WINDOW_S = 7.0


@pytest.mark.slow
def test_a_victims_p99_stays_under_twice_its_quiet_p99_while_another_client_floods(
        server: ServerProcess) -> None:
    quiet_p99s, loaded_p99s = [], []
    for _ in range(ROUNDS):
        quiet_p99s.append(p99(_latencies(server, WINDOW_S)))
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, server.host, str(server.port),
                                  ATTACKER, GET])
        try:
            time.sleep(1)  # past the attacker's burst: it is refused from here on
            loaded_p99s.append(p99(_latencies(server, WINDOW_S)))
        finally:
            flood.terminate()
            flood.wait(10)
    quiet, loaded = statistics.median(quiet_p99s), statistics.median(loaded_p99s)
    print(f"victim p99 quiet {quiet * 1000:.2f} ms, under a flood {loaded * 1000:.2f} ms "
          f"(medians of {ROUNDS}: quiet {[round(q * 1000, 2) for q in quiet_p99s]}, "
          f"flood {[round(v * 1000, 2) for v in loaded_p99s]})")
    assert server.metric('meshkp_http_bans_total{reason="errors"}') >= 1
    assert loaded < 2 * quiet, (quiet_p99s, loaded_p99s)
