"""The cost of the rate limits on op=get: requests/s with the limiter on, as a ratio to off.

Two real `meshkp serve` processes over copies of one data directory (a few fixture keys,
loaded with `meshkp load`): one with the limiter on and limits too high to refuse anything,
so that every request pays the whole path (client resolution, bucket table, flood and get
buckets, the status check after), and one without the limiter (bench/ratelimit_off_server.py).
The same generator (wrk if installed) drives `op=get` of one key on each, in back-to-back pairs
of alternating order; the figure is the median over the pairs of on/off.
Run: python -m bench.ratelimit_cost [--runs 3 --seconds 5 --connections 16]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from bench.common import (
    NO_REFUSALS,
    console,
    free_port,
    median,
    meshkp_command,
    report,
    stop_process,
    timed_run,
)
from bench.http_read import _alternate, start_server

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
KEYS = ("alice_signed.asc", "gentoo-l1.asc", "tails.asc", "weasel.asc")
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"


@click.command()
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--connections", type=int, default=16, show_default=True)
@click.option("--seconds", type=float, default=5.0, show_default=True)
def main(runs: int, connections: int, seconds: float) -> None:
    """op=get requests/s with rate limiting on, as a ratio to off."""
    run(runs, connections, seconds)


def run(runs: int = 3, connections: int = 16, seconds: float = 5.0) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    servers = []
    try:
        urls = {}
        for name, command in (("on", meshkp_command()),
                              ("off", [sys.executable, "-m", "bench.ratelimit_off_server"])):
            data_dir = work / name
            timed_run([*meshkp_command(), "load", "--data-dir", str(data_dir), "--no-progress",
                       *(str(FIXTURES / key) for key in KEYS)], timeout=300)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            servers.append(start_server([*command, "serve", "--data-dir", str(data_dir), "--host",
                                   "127.0.0.1", "--http-port", str(port), *NO_REFUSALS],
                                  f"{base}/pks/health", work / f"{name}.log"))
            urls[name] = f"{base}/pks/lookup?op=get&search=0x{ALICE}"
        results = _alternate(urls, runs, connections, seconds)
    finally:
        for server in servers:
            stop_process(server)
        shutil.rmtree(work, ignore_errors=True)
    ratios = [on.requests_per_s / off.requests_per_s
              for on, off in zip(results["on"], results["off"], strict=True)]
    on_rps = [r.requests_per_s for r in results["on"]]
    off_rps = [r.requests_per_s for r in results["off"]]
    console.print(f"load average {os.getloadavg()}")
    data = {"connections": connections, "seconds_per_run": seconds, "runs": runs,
            "on_rps": on_rps, "off_rps": off_rps, "pair_ratios": ratios,
            "ratio": median(ratios), "tool": results["on"][0].tool}
    report("ratelimit_cost", f"op=get with rate limits on / off ({connections} connections, "
           f"median of {runs})", ["on req/s", "off req/s", "ratio"],
           [[f"{median(on_rps):.0f}", f"{median(off_rps):.0f}", f"{median(ratios):.3f}"]], data)
    return data


if __name__ == "__main__":
    main()
