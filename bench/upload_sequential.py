"""Uploads one at a time: per-upload time of `meshkp serve` (defaults) against the floor.

A client sends COUNT small generated Ed25519 keys one after another over ONE keep-alive
connection (as a sync job, a migration script or a pool peer's fetches do). The floor, measured
in the same run on the same machine: one HTTP round trip of the same body to a bare aiohttp
handler (bench/bare_server.py), plus one 4 KB write + fdatasync in the node's data directory
(an acknowledged upload must be durable). The figure is the median per-upload time over RUNS
fresh nodes, as a ratio to the median floor; beside it, the median single upload against the
median bare round trip plus the median fdatasync ("p50 vs p50 floor"), which other processes'
disk traffic on a shared machine moves far less than the mean, and the node's CPU per
upload (/proc/PID/stat, every thread; and its event loop's thread alone, the rest being the
store's writer thread chiefly), which the machine's load moves least.

Then the same with CLIENTS concurrent clients (one keep-alive connection each) posting
CONCURRENT_COUNT distinct keys to another fresh node, to show that group commit still shares
fsyncs: acknowledged keys/s, and acknowledged writes per fsync (the node's
meshkp_store_synced_commits_total, scraped from /metrics before and after).

    python -m bench.upload_sequential --count 300 --runs 3 [--clients 8 --concurrent-count 1500]
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import click

from bench.common import (
    NO_REFUSALS,
    fetch,
    free_port,
    median,
    meshkp_command,
    report,
    stop_process,
    wait_http,
)
from bench.keygen import generate_key
from bench.replication_throughput import post_all
from meshkp.openpgp.armor import armor

# Seconds one run's uploads may take before the run is abandoned (a bound on the loop).
MAX_RUN_S = 300.0


def bodies(count: int, seed: bytes) -> list[bytes]:
    """Form bodies of `count` distinct armored keys, one per request."""
    return [b"keytext=" + quote(armor(generate_key(i, seed=seed).data), safe="").encode()
            for i in range(count)]


class OneWriteConnection(http.client.HTTPConnection):
    """An HTTPConnection that sends a request's headers and its bytes body in ONE write.

    http.client writes them in two, so the server often wakes for the headers alone, starts
    the handler, and waits one more loop turn and wake-up for the body: ~50 µs more on a
    quarter of the uploads, at random, on the bare server and on meshkp alike. A small POST
    from curl or GnuPG arrives in one segment; this measures that.
    """

    def _send_output(self, message_body: object = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes):
            super()._send_output(message_body, encode_chunked)
            return
        buffer: list[bytes] = self._buffer  # type: ignore[attr-defined]
        buffer.extend((b"", b""))
        message = b"\r\n".join(buffer) + message_body
        del buffer[:]
        self.send(message)


def post_sequentially(port: int, work: list[bytes]) -> tuple[float, float]:
    """POST every body in turn over one keep-alive connection; (mean, median) seconds per
    upload. The median is what one upload costs when no other process's disk traffic hits
    its fsync; the mean counts those spikes too (the issue's figure)."""
    connection = OneWriteConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    each = []
    try:
        for body in work:
            sent = time.perf_counter()
            connection.request("POST", "/pks/add", body=body, headers=headers)
            reply = connection.getresponse()
            reply.read()
            each.append(time.perf_counter() - sent)
            if reply.status not in (200, 404):  # the bare handler answers every path
                raise RuntimeError(f"upload answered {reply.status}")
            if time.perf_counter() - started > MAX_RUN_S:
                raise RuntimeError(f"run exceeded {MAX_RUN_S} s")
    finally:
        connection.close()
    return (time.perf_counter() - started) / len(work), median(each)


def fsync_seconds(directory: Path, rounds: int = 200) -> float:
    """Median time of one 4 KB write + fdatasync in `directory`."""
    path = directory / "fsync-probe"
    samples = []
    with open(path, "wb") as handle:
        for _ in range(rounds):
            began = time.perf_counter()
            handle.write(os.urandom(4096))
            handle.flush()
            os.fdatasync(handle.fileno())
            samples.append(time.perf_counter() - began)
    path.unlink()
    return median(samples)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds so far of a process (/proc/PID/stat: all its threads), or of
    one of its threads (/proc/PID/task/TID/stat; the event loop's is the main one, TID PID)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(args: list[str], health: str, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_file)
    wait_http(health, 60)
    return process


def store_counter(port: int, name: str) -> float:
    """A counter of the node's /metrics (meshkp_store_*_total)."""
    _status, body, _type = fetch(f"http://127.0.0.1:{port}/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"/metrics has no {name}")


def concurrent(count: int, clients: int, seed: str, work_root: Path) -> tuple[float, float]:
    """(acknowledged keys/s, writes per fsync) of `clients` concurrent clients on a fresh node."""
    work = bodies(count, seed=seed.encode())
    port = free_port()
    node = _serve([*meshkp_command(), "serve", "--data-dir", str(work_root / f"{seed}-node"),
                   "--http-port", str(port), *NO_REFUSALS], f"http://127.0.0.1:{port}/pks/health",
                  work_root / f"{seed}-node.log")
    try:
        fsyncs = store_counter(port, "meshkp_store_synced_commits_total")
        accepted, failed, seconds = post_all("127.0.0.1", port, work, clients)
        fsyncs = store_counter(port, "meshkp_store_synced_commits_total") - fsyncs
    finally:
        stop_process(node)
    if failed:
        raise RuntimeError(f"{failed} of {count} concurrent uploads failed")
    return accepted / seconds, accepted / max(1.0, fsyncs)


def run(count: int = 300, runs: int = 3, clients: int = 8,
        concurrent_count: int = 1500) -> dict[str, object]:
    work_root = Path(tempfile.mkdtemp(prefix="meshkp-upload-seq-"))
    rows = []
    per_upload, floors, rates, shared = [], [], [], []
    p50s, p50_floors, cpus, loop_cpus = [], [], [], []
    for index in range(runs):
        work = bodies(count, seed=f"seq-{index}".encode())
        body_file = work_root / f"body-{index}"
        body_file.write_bytes(work[0])
        bare_port, node_port = free_port(), free_port()
        bare = _serve([sys.executable, "-m", "bench.bare_server", "--port", str(bare_port),
                       "--body", str(body_file)], f"http://127.0.0.1:{bare_port}/",
                      work_root / f"bare-{index}.log")
        try:
            round_trip, round_trip_p50 = post_sequentially(bare_port, work)
        finally:
            stop_process(bare)
        data_dir = work_root / f"node-{index}"
        node = _serve([*meshkp_command(), "serve", "--data-dir", str(data_dir), "--http-port",
                       str(node_port), *NO_REFUSALS], f"http://127.0.0.1:{node_port}/pks/health",
                      work_root / f"node-{index}.log")
        try:
            cpu, loop_cpu = cpu_seconds(node.pid), cpu_seconds(node.pid, node.pid)
            upload, upload_p50 = post_sequentially(node_port, work)
            cpus.append((cpu_seconds(node.pid) - cpu) / len(work))
            loop_cpus.append((cpu_seconds(node.pid, node.pid) - loop_cpu) / len(work))
        finally:
            stop_process(node)
        sync = fsync_seconds(data_dir)
        floor = round_trip + sync
        per_upload.append(upload)
        floors.append(floor)
        p50s.append(upload_p50)
        p50_floors.append(round_trip_p50 + sync)
        rate, per_fsync = concurrent(concurrent_count, clients, f"conc-{index}", work_root)
        rates.append(rate)
        shared.append(per_fsync)
        rows.append([f"run {index}", f"{upload * 1000:.2f}", f"{round_trip * 1000:.2f}",
                     f"{sync * 1000:.2f}", f"{upload / floor:.2f}x",
                     f"{upload_p50 * 1000:.2f}", f"{upload_p50 / p50_floors[-1]:.2f}x",
                     f"{cpus[-1] * 1000:.2f}", f"{loop_cpus[-1] * 1000:.2f}", f"{rate:.0f}",
                     f"{per_fsync:.1f}"])
    upload, floor = median(per_upload), median(floors)
    p50, p50_floor = median(p50s), median(p50_floors)
    rows.append(["median", f"{upload * 1000:.2f}", "", f"floor {floor * 1000:.2f}",
                 f"{upload / floor:.2f}x", f"{p50 * 1000:.2f}", f"{p50 / p50_floor:.2f}x",
                 f"{median(cpus) * 1000:.2f}", f"{median(loop_cpus) * 1000:.2f}",
                 f"{median(rates):.0f}", f"{median(shared):.1f}"])
    data: dict[str, object] = {"count": count, "runs": runs, "per_upload_s": per_upload,
                               "floor_s": floors, "ratio": upload / floor,
                               "p50_upload_s": p50s, "p50_floor_s": p50_floors,
                               "p50_ratio": p50 / p50_floor, "node_cpu_s": cpus,
                               "loop_thread_cpu_s": loop_cpus,
                               "clients": clients,
                               "concurrent_count": concurrent_count, "keys_per_s": rates,
                               "writes_per_fsync": shared}
    report("upload_sequential",
           f"{count} uploads one at a time over one keep-alive connection, then "
           f"{concurrent_count} from {clients} concurrent clients (median of {runs})",
           ["run", "ms / upload", "bare round trip ms", "fdatasync ms", "vs floor",
            "p50 ms", "p50 vs p50 floor", "node CPU ms", "loop thread CPU ms",
            f"{clients} clients keys/s",
            "writes / fsync"],
           rows, data)
    return data


@click.command()
@click.option("--count", type=int, default=300, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--clients", type=int, default=8, show_default=True)
@click.option("--concurrent-count", type=int, default=1500, show_default=True)
def main(count: int, runs: int, clients: int, concurrent_count: int) -> None:
    """Per-upload time of sequential uploads, as a ratio to the HTTP + fsync floor; then
    keys/s and writes per fsync of concurrent clients."""
    run(count, runs, clients, concurrent_count)


if __name__ == "__main__":
    main()
