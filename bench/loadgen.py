"""HTTP load generation for the read benchmarks: wrk when installed, else an aiohttp client loop.

Both servers of a comparison are driven by the same generator with the same connections and
duration, so the ratio is fair whichever generator runs. The fallback client runs in its own
process so that it never shares an event loop (or a core's scheduling slot) with a server.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp
import click

WRK = shutil.which("wrk")


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests_per_s: float
    requests: int
    errors: int  # non-2xx answers and socket errors
    tool: str


def run_load(url: str, connections: int, seconds: float) -> LoadResult:
    """Drive url with `connections` keep-alive connections for `seconds`; bounded in time."""
    if WRK:
        return _wrk(url, connections, seconds)
    return _client_process(url, connections, seconds)


def _wrk(url: str, connections: int, seconds: float) -> LoadResult:
    assert WRK is not None
    # One wrk thread: the machine has 2 cores and the server under test needs one.
    result = subprocess.run(
        [WRK, "-t1", f"-c{connections}", f"-d{seconds:.0f}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    )
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += int(match.group(1))
    return LoadResult(rate, total, errors, "wrk")


def _client_process(url: str, connections: int, seconds: float) -> LoadResult:
    result = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, "--connections", str(connections),
         "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    )
    rate, total, errors = result.stdout.split()
    return LoadResult(float(rate), int(total), int(errors), "aiohttp-client")


async def _client_loop(url: str, connections: int, seconds: float) -> tuple[float, int, int]:
    counts = [0, 0]
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        counts[0 if response.status < 400 else 1] += 1
                except aiohttp.ClientError:
                    counts[1] += 1

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - began
    return counts[0] / elapsed, counts[0] + counts[1], counts[1]


@click.command()
@click.argument("url")
@click.option("--connections", type=int, default=16)
@click.option("--seconds", type=float, default=5.0)
def main(url: str, connections: int, seconds: float) -> None:
    """Fallback generator: print 'requests_per_s total errors'."""
    rate, total, errors = asyncio.run(_client_loop(url, connections, seconds))
    print(f"{rate:.1f} {total} {errors}")


if __name__ == "__main__":
    main()
