"""Figures 2 and 3: HKP reads of a real `meshkp serve` against a bare aiohttp handler.

Setup: debian-keyring is loaded with `meshkp load` into a fresh data directory and a real
`meshkp serve` process answers on 127.0.0.1. The benchmarked key is the median-size key of
the keyring (a typical key, not a toy). For each request (`op=get` by fingerprint, and
`op=index&options=mr` by that key's e-mail address) the baseline is a bare aiohttp handler
(bench/bare_server.py) that returns the very bytes meshkp returned, with the same content
type. Both are driven by the same generator (wrk if installed), same connections, same
duration, in back-to-back pairs of alternating order; the figure is the median over the
pairs of meshkp/bare (robust to load from other processes drifting between runs).
Run: python -m bench.http_read
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import click

from bench.common import (
    DEBIAN_KEYRING,
    NO_REFUSALS,
    console,
    fetch,
    free_port,
    median,
    meshkp_command,
    report,
    stop_process,
    timed_run,
    wait_http,
)
from bench.loadgen import LoadResult, run_load
from meshkp.bulk.split import key_spans
from meshkp.limits import Limits
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise

EMAIL = re.compile(rb"<([^<>@\s]+@[^<>@\s]+)>")
START_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class Target:
    fingerprint: str
    email: str
    key_bytes: int


def pick_median_key(keyring: Path) -> Target:
    """The median-size key of the keyring that has an e-mail address no other key has."""
    data = keyring.read_bytes()
    sized = sorted(key_spans(data, Limits().packet_bytes), key=lambda s: s[1] - s[0])
    owners: dict[str, int] = {}
    certs = []
    for start, end in sized:
        cert = normalise(parse_packets(data[start:end]))
        emails = sorted({m.group(1).decode().lower() for uid in cert.user_ids
                         for m in [EMAIL.search(uid)] if m})
        certs.append((cert, emails, end - start))
        for email in emails:
            owners[email] = owners.get(email, 0) + 1
    middle = len(certs) // 2
    for cert, emails, size in certs[middle:] + certs[:middle]:
        unique = [e for e in emails if owners[e] == 1]
        if unique:
            return Target(cert.fingerprint.hex().upper(), unique[0], size)
    raise RuntimeError(f"no key with a unique e-mail address in {keyring}")


def _alternate(urls: dict[str, str], runs: int, connections: int,
               seconds: float) -> dict[str, list[LoadResult]]:
    results: dict[str, list[LoadResult]] = {name: [] for name in urls}
    for url in urls.values():  # warm-up: first connections, caches, lazy imports
        run_load(url, connections, 1)
    for attempt in range(runs):
        # Each run is a back-to-back pair, in alternating order, so drift in machine load
        # between runs hits both servers alike; the figure is the median of pair ratios.
        order = list(urls.items()) if attempt % 2 == 0 else list(reversed(urls.items()))
        for name, url in order:
            result = run_load(url, connections, seconds)
            if result.errors:
                raise RuntimeError(f"{name}: {result.errors} failed requests in {url}")
            results[name].append(result)
            console.print(f"  run {attempt + 1} {name}: {result.requests_per_s:.0f} req/s")
    return results


def start_server(args: list[str], health_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    # stderr goes to a file: an unread pipe fills up and stalls the server mid-benchmark.
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_http(health_url, START_TIMEOUT_S)
    except RuntimeError:
        stop_process(process)
        raise RuntimeError(
            f"{' '.join(args[:3])} did not start: {log_path.read_text(errors='replace')[-2000:]}"
        ) from None
    return process


def load_keyring(data_dir: Path) -> None:
    """`meshkp load` of debian-keyring into a fresh data directory."""
    timed_run([*meshkp_command(), "load", "--data-dir", str(data_dir), "--no-progress",
               str(DEBIAN_KEYRING)], timeout=600)


def serve_defaults(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`meshkp serve` with the defaults users get (the access log on, to stderr: `log_path`),
    and its base URL. The rate limits run but refuse nothing (NO_REFUSALS): the load generator
    is one client at thousands of req/s, which the default limits would answer with 429s."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(
        [*meshkp_command(), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
         "--http-port", str(port), *NO_REFUSALS],
        f"{base}/pks/health", log_path,
    )
    return server, base


def start_bare_twin(name: str, meshkp_url: str,
                    work: Path) -> tuple[subprocess.Popen[bytes], int, bytes, str]:
    """A bare aiohttp handler (bench/bare_server.py) serving what `meshkp_url` answers:
    (process, port, body, content type)."""
    status, body, content_type = fetch(meshkp_url)
    if status != 200:
        raise RuntimeError(f"{meshkp_url} answered {status}: {body[:200]!r}")
    body_file = work / f"{name}.body"
    body_file.write_bytes(body)
    port = free_port()
    bare = start_server(
        [sys.executable, "-m", "bench.bare_server", "--port", str(port), "--body", str(body_file),
         "--content-type", content_type],
        f"http://127.0.0.1:{port}/",
        work / f"bare-{name}.log",
    )
    return bare, port, body, content_type


def compare(name: str, meshkp_url: str, runs: int, connections: int, seconds: float,
            work: Path) -> dict[str, object]:
    bare, port, body, content_type = start_bare_twin(name, meshkp_url, work)
    bare_url = f"http://127.0.0.1:{port}{urllib.parse.urlsplit(meshkp_url).path}"
    try:
        results = _alternate({"meshkp": meshkp_url, "bare": bare_url}, runs, connections, seconds)
    finally:
        stop_process(bare)
    pair_ratios = [m.requests_per_s / b.requests_per_s
                   for m, b in zip(results["meshkp"], results["bare"], strict=True)]
    return {
        "url": meshkp_url,
        "response_bytes": len(body),
        "content_type": content_type,
        "meshkp_rps": [r.requests_per_s for r in results["meshkp"]],
        "bare_rps": [r.requests_per_s for r in results["bare"]],
        "pair_ratios": pair_ratios,
        "ratio": median(pair_ratios),
        "tool": results["meshkp"][0].tool,
    }


@click.command()
@click.option("--runs", type=int, default=5, show_default=True)
@click.option("--connections", type=int, default=16, show_default=True)
@click.option("--seconds", type=float, default=5.0, show_default=True)
def main(runs: int, connections: int, seconds: float) -> None:
    """Requests/s of op=get and op=index against a bare aiohttp handler of the same body."""
    run(runs, connections, seconds)


def run(runs: int = 5, connections: int = 16, seconds: float = 5.0) -> dict[str, object]:
    target = pick_median_key(DEBIAN_KEYRING)
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    data_dir = work / "data"
    try:
        load_keyring(data_dir)
        server, base = serve_defaults(data_dir, work / "meshkp.log")
        try:
            get_url = f"{base}/pks/lookup?op=get&search=0x{target.fingerprint}"
            index_url = (f"{base}/pks/lookup?op=index&options=mr&search="
                         f"{urllib.parse.quote(target.email)}")
            console.print(f"op=get of {target.fingerprint} ({target.key_bytes} bytes binary)")
            get = compare("get", get_url, runs, connections, seconds, work)
            console.print(f"op=index&options=mr of {target.email}")
            index = compare("index", index_url, runs, connections, seconds, work)
        finally:
            stop_process(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for label, figure in (("op=get", get), ("op=index&options=mr", index)):
        rows.append([
            label, figure["response_bytes"], f"{median(figure['meshkp_rps']):.0f}",  # type: ignore[arg-type]
            f"{median(figure['bare_rps']):.0f}", f"{figure['ratio']:.2f}",  # type: ignore[arg-type]
        ])
    data = {
        "key": target.fingerprint, "email": target.email, "connections": connections,
        "seconds_per_run": seconds, "runs": runs, "get": get, "index": index,
        "target": ">= 0.7 of the bare handler",
    }
    report("http_read", f"HKP reads vs bare aiohttp ({connections} connections, median of {runs})",
           ["request", "bytes", "meshkp req/s", "bare req/s", "ratio"], rows, data)
    return data


if __name__ == "__main__":
    main()
