"""`meshkp backup` of a running node and `meshkp restore` of it, against dump and load.

The node holds N generated keys (bench/keygen.py, loaded once with `meshkp load` and cached
under bench/out/ by bench/replication_bootstrap.py). Each run times, side by side, the way to
save and rebuild a node without backup (`meshkp dump` of the stopped store, `meshkp load` of
the dump into a fresh data dir) and the backup's (`meshkp backup` from the running node over
HTTP, `meshkp restore` of the file with its integrity and Merkle checks), plus `cp -r` of the
store for scale (mostly from the page cache). Every command's process start is included.
Median of the runs.

    python -m bench.backup_restore --keys 20000 --runs 3
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import click

from bench.common import dir_bytes, meshkp_command, report, timed_run
from bench.replication_bootstrap import keyring_path, source_dir
from tests.integration.conftest import start_server


def one_run(cached: Path, work: Path) -> dict[str, float]:
    node_dir = work / "node"
    cp_s = timed_run(["cp", "-r", str(cached), str(node_dir)], timeout=600)
    server = start_server(node_dir, "--no-access-log")
    out = work / "node.backup"
    try:
        backup_s = timed_run([*meshkp_command(), "backup", "--node", server.url, "--data-dir",
                              str(node_dir), "--out", str(out), "--no-progress"], timeout=900)
    finally:
        server.stop()
    restore_s = timed_run([*meshkp_command(), "restore", str(out), "--data-dir",
                           str(work / "restored"), "--no-progress"], timeout=900)
    dump_s = timed_run([*meshkp_command(), "dump", "--data-dir", str(node_dir), "--out",
                        str(work / "dump"), "--no-progress"], timeout=900)
    load_s = timed_run([*meshkp_command(), "load", "--data-dir", str(work / "loaded"),
                        "--no-progress", str(work / "dump")], timeout=1800)
    return {"cp_s": cp_s, "backup_s": backup_s, "restore_s": restore_s, "dump_s": dump_s,
            "load_s": load_s,
            "file_bytes": out.stat().st_size, "store_bytes": dir_bytes(node_dir / "keys")}


def run(keys: int = 20_000, runs: int = 3) -> dict[str, float]:
    cached = source_dir(keys, [keyring_path(keys)], f"gen-{keys}")
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="meshkp-bk-") as tmp:
            results.append(one_run(cached, Path(tmp)))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    rows = [("meshkp dump (node stopped)", f"{med['dump_s']:.2f}", "1.00"),
            ("meshkp backup (node running)", f"{med['backup_s']:.2f}",
             f"{med['backup_s'] / med['dump_s']:.2f}"),
            ("meshkp load of the dump", f"{med['load_s']:.2f}", "1.00"),
            ("meshkp restore (checks included)", f"{med['restore_s']:.2f}",
             f"{med['restore_s'] / med['load_s']:.2f}"),
            ("cp -r of the store", f"{med['cp_s']:.2f}", "-")]
    report("backup_restore", f"backup and restore of {keys} keys (median of {runs})",
           ["step", "seconds", "vs baseline"], rows,
           {"keys": keys, "runs": results, "median": med})
    return med


@click.command()
@click.option("--keys", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--runs", type=click.IntRange(1, 10), default=3, show_default=True)
def main(keys: int, runs: int) -> None:
    """Time meshkp backup and restore against cp -r of the store."""
    run(keys, runs)


if __name__ == "__main__":
    main()
