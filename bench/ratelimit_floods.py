"""The memory of a node under each flood the rate limits and connection caps bound.

One real `meshkp serve` (default limits; 127.0.0.4 is its trusted proxy) takes, one after the
other, from clients on their own loopback addresses: --clients distinct clients through the
trusted proxy (X-Forwarded-For), which fill the bucket table up to --table, an op=get flood (4
keep-alive connections for --seconds), 200 slowloris connections (request heads that never
end), and 48 uploads of 8 MiB stalled 1 KiB before their end (red-team finding 4). RSS
(/proc/PID/status VmRSS) is read before and after each; every flood is bounded in count and time.
Run: python -m bench.ratelimit_floods [--seconds 10 --clients 40000 --table 20000]
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click

from bench.common import console, free_port, meshkp_command, report, stop_process, timed_run
from bench.http_read import start_server

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
GET = f"/pks/lookup?op=get&search=0x{ALICE}"
PROXY = "127.0.0.4"


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def _conn(port: int, source: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))


def get_flood(port: int, seconds: float) -> str:
    stop = time.monotonic() + seconds
    counts = {"requests": 0}

    def one() -> None:
        conn = _conn(port, "127.0.0.2")
        while time.monotonic() < stop:
            try:
                conn.request("GET", GET)
                reply = conn.getresponse()
                reply.read()
                counts["requests"] += 1
                if reply.will_close:
                    conn.close()
                    conn = _conn(port, "127.0.0.2")
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _conn(port, "127.0.0.2")
        conn.close()
    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"{counts['requests']} requests in {seconds:g} s"


def _hold(port: int, count: int, source: str, send: Callable[[socket.socket], None]) -> str:
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((source, 0))
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                sock.connect(("127.0.0.1", port))
                send(sock)
            held.append(sock)
        time.sleep(1)
        return f"{count} connections held"
    finally:
        for sock in held:
            sock.close()


def slowloris(port: int) -> str:
    return _hold(port, 200, "127.0.0.5", lambda s: s.sendall(
        b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n"))


def stalled_uploads(port: int) -> str:
    size = 8 * 1024 * 1024
    head = (f"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {size}\r\n\r\n").encode()
    body = b"keytext=" + b"A" * (size - 1024 - 8)
    return _hold(port, 48, "127.0.0.6", lambda s: s.sendall(head + body))


def many_clients(port: int, clients: int) -> str:
    conn = _conn(port, PROXY)
    for i in range(clients):
        forwarded = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        conn.request("GET", "/pks/lookup?op=stats", headers={"X-Forwarded-For": forwarded})
        reply = conn.getresponse()
        reply.read()
    conn.close()
    return f"{clients} distinct clients through the trusted proxy"


@click.command()
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--clients", type=int, default=40_000, show_default=True)
@click.option("--table", type=int, default=20_000, show_default=True,
              help="limits.rate_clients for the run")
def main(seconds: float, clients: int, table: int) -> None:
    """RSS of a node before and after each flood."""
    work = Path(tempfile.mkdtemp(prefix="bench-floods-"))
    try:
        data_dir = work / "data"
        timed_run([*meshkp_command(), "load", "--data-dir", str(data_dir), "--no-progress",
                   str(FIXTURES / "alice_signed.asc")], timeout=120)
        port = free_port()
        server = start_server([*meshkp_command(), "serve", "--data-dir", str(data_dir), "--host",
                         "127.0.0.1", "--http-port", str(port), "--trusted-proxy", f"{PROXY}/32",
                         "--limit", f"rate_clients={table}", "--no-access-log"],
                        f"http://127.0.0.1:{port}/pks/health", work / "meshkp.log")
        rows = []
        try:
            # The table first: its growth is then not hidden by buffers the uploads freed.
            floods: list[tuple[str, Callable[[], str]]] = [
                ("distinct clients (bucket table)", lambda: many_clients(port, clients)),
                ("op=get flood, one client", lambda: get_flood(port, seconds)),
                ("200 slowloris connections", lambda: slowloris(port)),
                ("48 stalled 8 MiB uploads", lambda: stalled_uploads(port)),
            ]
            for name, flood in floods:
                before = rss_mib(server.pid)
                began = time.monotonic()
                what = flood()
                after = rss_mib(server.pid)
                rows.append([name, what, f"{before:.0f}", f"{after:.0f}", f"{after - before:+.0f}",
                             f"{time.monotonic() - began:.1f}"])
                console.print(rows[-1])
            metrics = urlopen_text(f"http://127.0.0.1:{port}/metrics")
        finally:
            stop_process(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tracked = re.search(r"^meshkp_http_rate_clients ([0-9.e+]+)$", metrics, re.M)
    data = {"rows": rows, "rate_clients_limit": table,
            "rate_clients_at_end": float(tracked.group(1)) if tracked else None,
            "load_average": os.getloadavg()}
    report("ratelimit_floods", "RSS (MiB) of a node under each flood",
           ["flood", "what", "before", "after", "change", "s"], rows, data)


def urlopen_text(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


if __name__ == "__main__":
    main()
