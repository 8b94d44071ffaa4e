"""Shared benchmark plumbing: timing subprocesses, medians, result tables and JSON in bench/out/.

Every figure a benchmark reports is a ratio against a baseline measured in the same run on
the same machine, so that the number means something on another machine too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-keyring.gpg")
console = Console()
# Set by `run_all --quick`: smoke-test results go to <name>.quick.json and never overwrite
# the figures of a full run.
RESULT_SUFFIX = ""


# `meshkp serve` options for load generators that are one client at thousands of requests/s:
# limits no benchmark reaches, so the rate limiter runs its whole path but never refuses.
# NO_REFUSAL_LIMITS: the same as Limits fields, for a benchmark that builds its Node in process.
NO_REFUSAL_LIMITS = {name: 1_000_000_000 for name in (
    "rate_get_per_minute", "rate_get_burst", "rate_search_per_minute", "rate_search_burst",
    "rate_upload_per_minute", "rate_upload_burst", "ban_requests", "ban_errors",
    "http_client_connections", "http_connections")}
NO_REFUSALS = [arg for name, value in NO_REFUSAL_LIMITS.items() for arg in ("--limit", f"{name}={value}")]


def meshkp_command() -> list[str]:
    """The `meshkp` console script of this venv (what an operator runs)."""
    script = Path(sys.executable).with_name("meshkp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def timed_run(args: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> float:
    """Run a command to completion and return its wall time; raise with its stderr on failure."""
    began = time.perf_counter()
    result = subprocess.run(
        list(args), capture_output=True, timeout=timeout, env=env, check=False
    )
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:3])} ... exited {result.returncode}: "
            f"{result.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def dir_bytes(path: Path) -> int:
    """Bytes of all regular files under path (what the data directory costs on disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float) -> None:
    """Poll until url answers (any HTTP status), or raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def fetch(url: str) -> tuple[int, bytes, str]:
    """(status, body, content type) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate a process we started and reap it (kill if it ignores SIGTERM)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def report(name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
           data: dict[str, object]) -> Path:
    """Print a table and write data (plus the table) to bench/out/<name>.json."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}{RESULT_SUFFIX}.json"
    payload = {
        "benchmark": name,
        "title": title,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host_cpus": os.cpu_count(),
        # Other work on the machine skews absolute figures; ratios are measured side by side.
        "load_average_at_end": os.getloadavg(),
        "table": {"columns": list(columns), "rows": [[str(c) for c in r] for r in rows]},
        **data,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
