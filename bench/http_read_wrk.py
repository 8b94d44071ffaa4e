"""The read path at the ceiling (issue 11): `meshkp serve` with its defaults against bare aiohttp.

A real `meshkp serve` with the configuration a new user gets (the access log on, written to
stderr, which is a file here) serves debian-keyring. For each request (`op=get` by fingerprint,
`op=get&options=mr`, `op=index&options=mr` by e-mail, `op=vindex` by e-mail) a bare aiohttp
handler (bench/bare_server.py) serves the very bytes meshkp answered, with the same content
type. wrk (`-t1 -cC --latency`) drives both in back-to-back pairs of alternating order; per pair
the figure is meshkp req/s ÷ bare req/s, reported as the median over the pairs, with meshkp's
p99 latency under that load.

Ratios scatter on a machine shared with other work, so each run also reads the server
process's CPU time from /proc (every thread: event loop, read pool, access log writer) and
divides it by the requests wrk counted: µs of CPU per request, which other processes' load
barely moves. The CPU ratio (bare µs ÷ meshkp µs) is what the throughput ratio tends to when
the server is CPU-bound.

Without wrk (`apt-get install wrk`) the benchmark is skipped with a message: its Python
fallback generator saturates before the servers do (docs/benchmarks.md).
Run: python -m bench.http_read_wrk [--pairs 3] [--connections 32] [--seconds 5]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import click

from bench.common import (
    DEBIAN_KEYRING,
    console,
    median,
    report,
    stop_process,
)
from bench.http_read import Target, load_keyring, pick_median_key, serve_defaults, start_bare_twin

WRK = shutil.which("wrk")
# Seconds a wrk run may take past its duration before it counts as hung (subprocess timeout).
WRK_GRACE_S = 30.0
_TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True)
class Run:
    requests_per_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _latency_ms(out: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no {percentile}% latency:\n{out}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, connections: int, seconds: float, pid: int) -> Run:
    """One wrk run against url; the server `pid`'s CPU is read around it."""
    assert WRK is not None
    before = cpu_seconds(pid)
    result = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + WRK_GRACE_S, check=True,
    )
    cpu = cpu_seconds(pid) - before
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(m.group(1)) for m in re.finditer(
        r"(?:Non-2xx or 3xx responses|Socket errors: connect): (\d+)", out))
    return Run(rate, total, errors, _latency_ms(out, "50"), _latency_ms(out, "99"),
               cpu * 1e6 / max(total, 1))


def compare(name: str, url: str, meshkp_pid: int, pairs: int, connections: int,
            seconds: float, work: Path) -> dict[str, object]:
    """Pairs of meshkp and the bare handler serving the same bytes, in alternating order."""
    bare, port, body, content_type = start_bare_twin(name, url, work)
    path = urllib.parse.urlsplit(url)
    servers = {"meshkp": (url, meshkp_pid),
               "bare": (f"http://127.0.0.1:{port}{path.path}?{path.query}", bare.pid)}
    runs: dict[str, list[Run]] = {"meshkp": [], "bare": []}
    loads = []
    try:
        for target, pid in servers.values():  # warm-up: connections, caches, lazy imports
            wrk(target, connections, 1, pid)
        for pair in range(pairs):
            loads.append(os.getloadavg()[0])
            order = list(servers) if pair % 2 == 0 else list(reversed(servers))
            for server in order:
                target, pid = servers[server]
                run = wrk(target, connections, seconds, pid)
                if run.errors:
                    raise RuntimeError(f"{server}: {run.errors} failed requests in {target}")
                runs[server].append(run)
                console.print(f"  {name} pair {pair + 1} {server}: {run.requests_per_s:,.0f} req/s, "
                              f"p99 {run.p99_ms:.2f} ms, {run.cpu_us_per_request:.1f} µs CPU/req")
    finally:
        stop_process(bare)
    mine, base = runs["meshkp"], runs["bare"]
    ratios = [m.requests_per_s / b.requests_per_s for m, b in zip(mine, base, strict=True)]
    cpu_mine = median([r.cpu_us_per_request for r in mine])
    cpu_base = median([r.cpu_us_per_request for r in base])
    return {
        "url": url, "response_bytes": len(body), "content_type": content_type,
        "meshkp_rps": [r.requests_per_s for r in mine], "bare_rps": [r.requests_per_s for r in base],
        "pair_ratios": ratios, "ratio": median(ratios),
        "meshkp_p50_ms": [r.p50_ms for r in mine], "meshkp_p99_ms": [r.p99_ms for r in mine],
        "bare_p99_ms": [r.p99_ms for r in base], "p99_ms": median([r.p99_ms for r in mine]),
        "meshkp_cpu_us": [r.cpu_us_per_request for r in mine],
        "bare_cpu_us": [r.cpu_us_per_request for r in base],
        "cpu_ratio": cpu_base / cpu_mine, "load_average_1m": loads,
    }


def urls(base: str, target: Target) -> dict[str, str]:
    email = urllib.parse.quote(target.email)
    return {
        "get": f"{base}/pks/lookup?op=get&search=0x{target.fingerprint}",
        "get_mr": f"{base}/pks/lookup?op=get&options=mr&search=0x{target.fingerprint}",
        "index_mr": f"{base}/pks/lookup?op=index&options=mr&search={email}",
        "vindex": f"{base}/pks/lookup?op=vindex&search={email}",
    }


@click.command()
@click.option("--pairs", type=int, default=3, show_default=True)
@click.option("--connections", type=int, default=32, show_default=True)
@click.option("--seconds", type=float, default=5.0, show_default=True)
@click.option("--only", "only", multiple=True, type=click.Choice(["get", "get_mr", "index_mr", "vindex"]),
              help="Measure only these requests (default: all).")
def main(pairs: int, connections: int, seconds: float, only: tuple[str, ...]) -> None:
    """meshkp serve (defaults, access log on) vs bare aiohttp under wrk: ratio, p99, CPU/request."""
    run(pairs, connections, seconds, only)


def run(pairs: int = 3, connections: int = 32, seconds: float = 5.0,
        only: tuple[str, ...] = ()) -> dict[str, object]:
    if WRK is None:
        console.print("http_read_wrk: skipped, wrk is not installed (apt-get install wrk); "
                      "the Python load generator saturates before the servers do")
        return {"skipped": "wrk is not installed"}
    began = time.monotonic()
    target = pick_median_key(DEBIAN_KEYRING)
    work = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    data_dir = work / "data"
    figures: dict[str, dict[str, object]] = {}
    try:
        load_keyring(data_dir)
        # The defaults users get: nothing but where to listen. The access log goes to stderr,
        # which is this file.
        server, base = serve_defaults(data_dir, work / "meshkp.log")
        try:
            for name, url in urls(base, target).items():
                if only and name not in only:
                    continue
                console.print(f"{name}: {url}")
                figures[name] = compare(name, url, server.pid, pairs, connections, seconds, work)
        finally:
            stop_process(server)
        access_lines = sum(1 for line in (work / "meshkp.log").open(errors="replace")
                           if "event=http " in line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, figure in figures.items():
        rows.append([
            name, figure["response_bytes"], f"{median(figure['meshkp_rps']):,.0f}",  # type: ignore[arg-type]
            f"{median(figure['bare_rps']):,.0f}", f"{figure['ratio']:.2f}",  # type: ignore[arg-type]
            f"{figure['p99_ms']:.2f}", f"{median(figure['meshkp_cpu_us']):.1f}",  # type: ignore[arg-type]
            f"{median(figure['bare_cpu_us']):.1f}", f"{figure['cpu_ratio']:.2f}",  # type: ignore[arg-type]
        ])
    data = {
        "key": target.fingerprint, "email": target.email, "connections": connections,
        "seconds_per_run": seconds, "pairs": pairs, "figures": figures,
        "access_log_lines": access_lines, "elapsed_s": time.monotonic() - began,
        "targets": {"get": ">= 0.85", "index_mr": ">= 0.75", "p99_ms": "< 10"},
    }
    report("http_read_wrk",
           f"meshkp serve (defaults, access log on) vs bare aiohttp, wrk -t1 -c{connections}, "
           f"median of {pairs} pairs",
           ["request", "bytes", "meshkp req/s", "bare req/s", "ratio", "p99 ms",
            "meshkp µs CPU/req", "bare µs CPU/req", "CPU ratio"], rows, data)
    return data


if __name__ == "__main__":
    main()
