"""Data-path throughput while the control plane churns: `python -m bench.control_churn`.

Three `meshkp serve --mesh` processes on loopback (`--control-profile local`, `--gossip-profile
test`, no access log), formed as operators form them. Each round measures, on one follower,
`/pks/add` keys/s (CLIENTS connections posting new generated keys) and then `op=get` req/s
(CLIENTS connections fetching stored keys by fingerprint) under one continuous load whose
WINDOWS windows of WINDOW seconds alternate between a quiet control plane and one where a
policy change (a SetLimits through the leader) commits every 100 ms. Windows this short let
both sides see the same background load (the machine is shared and its load drifts by the
second); the run's figure is requests completed in churning windows over those in quiet
ones, and the benchmark's the median over ROUNDS runs (churn first in odd runs). The control
plane's writes share the node's store writer (and its fsyncs) with the data commits, so this
is where churn would show.
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import click

from bench.common import report
from bench.keygen import generate_key
from meshkp.openpgp.armor import armor
from tests.integration.control_mesh import ControlMesh

CHURN_INTERVAL_S = 0.1
SEED = b"churn"


Request = Callable[[int, int], tuple[str, str, bytes | None, dict[str, str]]]


def _clients(url: str, clients: int, seconds: float, request: Request) -> list[float]:
    """The completion times (perf_counter) of the requests `clients` keep-alive connections
    made during `seconds`; RuntimeError if any failed."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    done: list[list[float]] = [[] for _ in range(clients)]
    failed: list[int] = [0] * clients
    stop = time.perf_counter() + seconds

    def work(worker: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = 0
        try:
            while time.perf_counter() < stop:
                method, path, body, headers = request(worker, n)
                conn.request(method, path, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                if reply.status == 200:
                    done[worker].append(time.perf_counter())
                else:
                    failed[worker] += 1
                n += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    if sum(failed):
        raise RuntimeError(f"{sum(failed)} requests to {url} failed")
    return sorted(t for times in done for t in times)


class _Keys:
    """Distinct new keys to upload (each worker its own sequence), and keys to fetch."""

    def __init__(self, clients: int, per_client: int) -> None:
        keys = [[generate_key(w * per_client + i, seed=SEED) for i in range(per_client)]
                for w in range(clients)]
        self.fingerprints = [[k.fingerprint.hex() for k in row] for row in keys]
        self.bodies = [[b"keytext=" + quote(armor(k.data), safe="").encode() for k in row] for row in keys]
        self.used = [0] * clients

    def uploaded(self) -> list[str]:
        """Fingerprints of the keys uploaded so far."""
        return [fp for w, row in enumerate(self.fingerprints) for fp in row[:self.used[w]]]

    def upload(self, worker: int, _n: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        i = self.used[worker]
        if i >= len(self.bodies[worker]):
            raise RuntimeError("ran out of generated keys: raise --keys-per-client")
        self.used[worker] += 1
        return "POST", "/pks/add", self.bodies[worker][i], {
            "Content-Type": "application/x-www-form-urlencoded"}


class _Churn:
    """A policy change through `node` every CHURN_INTERVAL_S while `on` is set, in a thread."""

    def __init__(self, mesh: ControlMesh, node: str) -> None:
        self.mesh, self.node = mesh, node
        self.on = threading.Event()
        self.commits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.on.set()
        self._thread.join(30)

    def _run(self) -> None:
        server = self.mesh.servers[self.node]
        token = (server.data_dir / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = 0
        while not self._stop.is_set():
            self.on.wait()
            began = time.perf_counter()
            body = json.dumps({"limits": {"search_results": 100 + n % 50}}).encode()
            conn.request("PUT", "/cluster/policy", body=body, headers=headers)
            reply = conn.getresponse()
            reply.read()
            self.commits += reply.status == 200
            n += 1
            self._stop.wait(max(0.0, began + CHURN_INTERVAL_S - time.perf_counter()))
        conn.close()


def _interleaved(url: str, clients: int, windows: int, window_s: float, request: Request,
                 churn: _Churn, churn_first: bool) -> float:
    """Throughput with churn over throughput without, from one continuous load whose windows
    of `window_s` alternate quiet and churning: both see the same background load."""
    began = time.perf_counter()
    flips: list[threading.Timer] = []
    for k in range(windows):
        churning = (k % 2 == 0) == churn_first
        flips.append(threading.Timer(k * window_s, churn.on.set if churning else churn.on.clear))
    for timer in flips:
        timer.start()
    try:
        times = _clients(url, clients, windows * window_s, request)
    finally:
        for timer in flips:
            timer.cancel()
        churn.on.clear()
    counts = [0, 0]  # quiet, churning
    for t in times:
        k = min(windows - 1, int((t - began) / window_s))
        counts[int((k % 2 == 0) == churn_first)] += 1
    if not counts[0]:
        raise RuntimeError("no request completed in the quiet windows")
    return counts[1] / counts[0]


def run(rounds: int = 3, windows: int = 10, window_s: float = 1.0, clients: int = 4,
        keys_per_client: int = 4000, size: int = 3) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="meshkp-bench-churn-") as tmp:
        mesh = ControlMesh(Path(tmp), size=size)
        try:
            leader = mesh.form()
            target = sorted(n for n in mesh.servers if n != leader)[0]
            url = mesh.servers[target].url
            keys = _Keys(clients, keys_per_client)
            warm = _clients(url, clients, 2.0, keys.upload)  # also stores the keys to fetch
            stored = keys.uploaded()

            def get(_w: int, n: int) -> tuple[str, str, bytes | None, dict[str, str]]:
                return "GET", f"/pks/lookup?op=get&options=mr&search=0x{stored[n % len(stored)]}", None, {}

            ratios: dict[str, list[float]] = {"add": [], "get": []}
            with _Churn(mesh, leader) as churn:
                for r in range(rounds):
                    for kind, request in (("add", keys.upload), ("get", get)):
                        ratios[kind].append(_interleaved(url, clients, windows, window_s, request,
                                                         churn, churn_first=r % 2 == 1))
                churned_s = rounds * 2 * windows * window_s / 2
                commits_per_s = churn.commits / churned_s
        finally:
            mesh.close()
    data: dict[str, object] = {"rounds": rounds, "windows": windows, "window_s": window_s,
                               "clients": clients, "nodes": size, "ratios": ratios,
                               "warmup_adds_per_s": len(warm) / 2.0,
                               "churn_commits_per_s": commits_per_s,
                               "add_ratio_median": statistics.median(ratios["add"]),
                               "get_ratio_median": statistics.median(ratios["get"])}
    rows = [(label, " / ".join(f"{x:.3f}" for x in ratios[kind]), f"{statistics.median(ratios[kind]):.3f}")
            for kind, label in (("add", "/pks/add keys/s, churn / quiet"),
                                ("get", "op=get req/s, churn / quiet"))]
    rows.append(("policy commits/s while churning", f"{commits_per_s:.1f}", ""))
    rows.append(("/pks/add keys/s (warm-up, quiet)", f"{len(warm) / 2.0:.0f}", ""))
    report("control_churn", f"Data path under control-plane churn, {size} nodes (median of {rounds})",
           ("what", "per round", "median"), rows, data)
    return data


@click.command()
@click.option("--rounds", type=int, default=3, show_default=True, help="Runs of each kind (>= 3).")
@click.option("--windows", type=int, default=10, show_default=True,
              help="Alternating quiet/churn windows per run.")
@click.option("--window", "window_s", type=float, default=1.0, show_default=True, help="Seconds a window.")
@click.option("--clients", type=int, default=4, show_default=True, help="Client connections.")
@click.option("--nodes", type=click.IntRange(3, 5), default=3, show_default=True)
@click.option("--keys-per-client", type=int, default=4000, show_default=True,
              help="New keys generated per client connection (uploads need fresh keys).")
def main(rounds: int, windows: int, window_s: float, clients: int, nodes: int, keys_per_client: int) -> None:
    """Measure /pks/add and op=get throughput with and without a policy change every 100 ms."""
    run(rounds, windows, window_s, clients, keys_per_client, nodes)


if __name__ == "__main__":
    main()
