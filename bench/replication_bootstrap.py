"""Bootstrap of a new node from a node holding N keys, against `meshkp load` of the same keys.

A source `meshkp serve` holds N generated Ed25519 keys (bench/keygen.py), or the keys of
the keyrings given with --keyring, loaded once with `meshkp load` and cached under
bench/out/. Each run times, side by side: `meshkp load` of the same files into a fresh data
directory (the baseline of issue 11: bootstrap should cost <= 0.3x of it), `cp -r` of the
source's LevelDB directory (the floor), and the bootstrap itself: a new, empty node started
with the source as its only replication peer, timed from launching it until its merkle_root
equals the source's (process start, the snapshot copy, the Merkle rebuild and the diff
included). Both processes run on this machine's loopback, so they share its cores; their CPU
seconds are reported too, and the phases of the copy over time.

    python -m bench.replication_bootstrap --keys 100000 --runs 3
    python -m bench.replication_bootstrap --keyring /usr/share/keyrings/debian-keyring.gpg \
        --keyring /usr/share/keyrings/debian-maintainers.gpg \
        --keyring /usr/share/keyrings/debian-nonupload.gpg --runs 3
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from bench.common import OUT_DIR, free_port, meshkp_command, report, timed_run
from bench.keygen import write_keyring
from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import ServerProcess, start_server

# Seconds one bootstrap may take before the run is declared failed (the target is 60 s).
BOOTSTRAP_TIMEOUT_S = 900
# Status polling period of the new node: often enough for a resolution well under the
# keyrings' ~1 s bootstrap (0.25 s, as before, was a quarter of it), rarely enough not to cost
# it CPU (each poll reads the Merkle root and the counters: ~1 ms).
POLL_S = 0.05
# The new node's own account of its snapshot copy (meshkp/replication/snapshot.py): the copy
# alone, without process start-up, the first round's set-up or the confirming diff.
DONE_RE = re.compile(r"event=bootstrap_done .* s=([0-9.]+)")


def keyring_path(n: int) -> Path:
    """The cached keyring of n generated keys (written on first use)."""
    path = OUT_DIR / f"bootstrap-keys-{n}.pgp"
    if not path.exists():
        began = time.perf_counter()
        partial = path.with_suffix(".tmp")
        write_keyring(str(partial), n)
        partial.rename(path)
        print(f"generated {n} keys into {path} in {time.perf_counter() - began:.1f} s")
    return path


def load_command(data_dir: Path, rings: Sequence[Path], summary: Path) -> list[str]:
    return [*meshkp_command(), "load", "--data-dir", str(data_dir), "--node-id", "src",
            "--no-progress", "--summary-json", str(summary), *map(str, rings)]


def source_dir(n: int, rings: Sequence[Path], name: str) -> Path:
    """The cached data directory of the source node, loaded with `meshkp load` on first use
    (n: the keys it must hold; 0 for keyrings, whose count is what the load stored)."""
    path = OUT_DIR / f"bootstrap-source-{name}"
    done = path / "loaded.json"
    if done.exists():
        return path
    partial = OUT_DIR / f"bootstrap-source-{name}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    seconds = timed_run(load_command(partial, rings, partial / "load.json"), timeout=3600)
    summary = json.loads((partial / "load.json").read_text())
    if n and summary.get("keys_in_store") != n:
        raise RuntimeError(f"meshkp load stored {summary.get('keys_in_store')} keys, not {n}")
    n = int(summary["keys_in_store"])
    (partial / "loaded.json").write_text(json.dumps({"keys": n, "load_seconds": seconds}))
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)
    print(f"loaded the source ({n} keys) with meshkp load in {seconds:.1f} s")
    return path


def children_cpu() -> float:
    """User + system CPU seconds of this process's reaped children (and theirs, when reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def status(node: ServerProcess) -> dict[str, Any]:
    reply = node.request("GET", "/cluster/sync/status", timeout=60)
    assert reply.status == 200, reply.text
    data = reply.json()
    assert isinstance(data, dict)
    return data


def one_run(n: int, cached: Path, work: Path, run: int, verify: str,
            rings: Sequence[Path]) -> dict[str, Any]:
    """The two baselines (meshkp load, cp -r) and one bootstrap; their figures."""
    run_dir = work / f"run{run}"
    run_dir.mkdir(parents=True)
    load_s = timed_run(load_command(run_dir / "load", rings, run_dir / "load.json"), timeout=3600)
    shutil.rmtree(run_dir / "load", ignore_errors=True)
    key_file = run_dir / "cluster.key"
    write_key_file(key_file, [generate_key()], overwrite=True)
    src = run_dir / "src"
    src.mkdir()
    for item in cached.iterdir():  # the node identity and small files; the store is the baseline
        if item.name != "keys" and item.is_file():
            shutil.copy2(item, src / item.name)
    cp_s = timed_run(["cp", "-r", str(cached / "keys"), str(src / "keys")], timeout=600)
    ports = free_port(), free_port()
    common = ["--cluster-key-file", str(key_file), "--no-access-log", "--log-level", "WARNING"]
    source = start_server(src, "--node-id", "src", "--replication-port", str(ports[0]), *common)
    new: ServerProcess | None = None
    try:
        want = status(source)
        assert want["keys"] == n, f"source holds {want['keys']} keys, not {n}"
        began = time.monotonic()
        new = start_server(run_dir / "new", "--node-id", "new", "--replication-port", str(ports[1]),
                           "--replication-peer", f"127.0.0.1:{ports[0]}",
                           "--verify-peer-records", verify, *common[:-2], "--log-level", "INFO")
        started_s = time.monotonic() - began
        samples: list[tuple[float, int]] = []
        while True:
            now = status(new)
            elapsed = time.monotonic() - began
            copying = now.get("bootstrap")
            if copying:  # a snapshot bootstrap: its phase, the rows copied, both CPU seconds
                samples.append((round(elapsed, 2), copying["phase"], copying["records"],
                                copying["index_entries"], process_cpu(new.proc.pid),
                                process_cpu(source.proc.pid)))
            elif now["syncing"]:
                samples.append((round(elapsed, 2), now["syncing"]["phase"], now["syncing"]["pulled"]))
            if now["merkle_root"] == want["merkle_root"]:
                break
            if elapsed > BOOTSTRAP_TIMEOUT_S:
                raise RuntimeError(f"no convergence after {elapsed:.0f} s: {now}")
            time.sleep(POLL_S)
        wall = time.monotonic() - began
        assert now["keys"] == n, f"new node holds {now['keys']} keys, not {n}"
        time.sleep(1.0)  # let the round finish (its worker processes stop with it)
        peer = status(new)["peers"].get(f"127.0.0.1:{ports[0]}", {})
        total = peer.get("total", {})
        done = DONE_RE.search(new.log_text())
        copy_s = float(done.group(1)) if done else None
    finally:
        # Lifetime CPU of each process (start-up included; worker processes included once
        # the node has reaped them), from the rusage of reaped children.
        cpu0 = children_cpu()
        if new is not None:
            new.stop()
        cpu1 = children_cpu()
        source.stop()
        cpu2 = children_cpu()
    new_cpu, source_cpu = cpu1 - cpu0, cpu2 - cpu1
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "wall_s": wall, "load_s": load_s, "load_ratio": wall / load_s, "cp_s": cp_s,
        # From the new node answering HTTP to the equal root: the bootstrap without start-up.
        "after_start_s": wall - started_s, "after_start_ratio": (wall - started_s) / load_s,
        "ratio": wall / cp_s, "node_start_s": started_s,
        # The snapshot copy as the new node timed it (None: it pulled instead of copying).
        "copy_s": copy_s, "copy_ratio": copy_s / load_s if copy_s is not None else None,
        "new_cpu_s": new_cpu, "source_cpu_s": source_cpu,
        "bytes_received": total.get("bytes_received"), "bytes_sent": total.get("bytes_sent"),
        "progress": samples[:: max(1, len(samples) // 20)],
    }


@click.command()
@click.option("--keys", "n", default=100_000, show_default=True,
              help="Generated keys the source holds (ignored with --keyring).")
@click.option("--keyring", "keyrings", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Load the source from these keyring files instead (repeatable).")
@click.option("--runs", default=3, show_default=True)
@click.option("--verify-peer-records", "verify", default="push", show_default=True,
              type=click.Choice(["all", "push", "none"]),
              help="The new node's setting (push: snapshot copy; all: every record verified).")
def main(n: int, keyrings: tuple[str, ...], runs: int, verify: str) -> None:
    """Bootstrap a new node RUNS times; report against meshkp load and cp -r of the same keys."""
    run(n, runs, verify, keyrings)


def run(keys: int = 100_000, runs: int = 3, verify: str = "push",
        keyrings: Sequence[str] = ()) -> None:
    """The benchmark (bench.run_all calls it with small sizes for --quick)."""
    if keyrings:
        rings = [Path(k) for k in keyrings]
        name = "rings-" + "-".join(r.stem for r in rings)
        cached = source_dir(0, rings, name)
    else:
        rings = [keyring_path(keys)]
        cached = source_dir(keys, rings, str(keys))
    n = int(json.loads((cached / "loaded.json").read_text())["keys"])
    work = OUT_DIR / "bootstrap-work"  # same disk as the cached source, for cp -r
    shutil.rmtree(work, ignore_errors=True)
    results = []
    try:
        for run in range(runs):
            result = one_run(n, cached, work, run, verify, rings)
            results.append(result)
            print(f"run {run}: bootstrap {result['wall_s']:.1f} s ({n / result['wall_s']:,.0f} keys/s), "
                  f"meshkp load {result['load_s']:.1f} s (ratio {result['load_ratio']:.2f}), "
                  f"cp -r {result['cp_s']:.2f} s, node start {result['node_start_s']:.2f} s, "
                  f"copy {result['copy_s'] or 0:.2f} s (ratio {result['copy_ratio'] or 0:.2f}), "
                  f"cpu new {result['new_cpu_s']:.1f} s source {result['source_cpu_s']:.1f} s",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = statistics.median(r["wall_s"] for r in results)
    load_ratio = statistics.median(r["load_ratio"] for r in results)
    cp_s = statistics.median(r["cp_s"] for r in results)
    copies = [r["copy_ratio"] for r in results if r["copy_ratio"] is not None]
    copy_ratio = statistics.median(copies) if copies else None
    rows = [[f"run {i}", f"{r['wall_s']:.1f}", f"{r['load_s']:.1f}", f"{r['load_ratio']:.2f}",
             f"{r['cp_s']:.2f}", f"{r['new_cpu_s']:.1f}", f"{r['source_cpu_s']:.1f}",
             f"{r['bytes_received'] or 0:,}"]
            for i, r in enumerate(results)]
    rows.append(["median", f"{wall:.1f}", "", f"{load_ratio:.2f}", f"{cp_s:.2f}", "", "", ""])
    report("replication_bootstrap" + ("_keyrings" if keyrings else ""),
           f"Bootstrap of a new node from {n:,} keys (median of {runs}, verify={verify})",
           ["run", "bootstrap s", "meshkp load s", "bootstrap/load", "cp -r s", "new node CPU s",
            "source CPU s", "bytes in"],
           rows,
           {"keys": n, "keyrings": list(keyrings), "runs": results, "median_wall_s": wall,
            "median_load_ratio": load_ratio, "median_cp_s": cp_s,
            "median_copy_ratio": copy_ratio,
            "median_after_start_ratio": statistics.median(r["after_start_ratio"] for r in results),
            "keys_per_s": n / wall,
            "verify_peer_records": verify, "target_s": 8, "target_load_ratio": 0.3,
            "python": sys.version.split()[0]})


if __name__ == "__main__":
    main()
