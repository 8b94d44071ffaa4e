"""Figure 4: keys/s and bytes on disk when loading 100,000 generated Ed25519 keys.

The keys come from bench/keygen.py: real v4 EdDSA keys with a user ID, a positive
certification and a cv25519 subkey with its binding, every self-signature valid, so
`meshkp load` does the full work (parse, verify two signatures, index, write) per key.
Baselines measured in the same run: `gpg --import` of the first `--gpg-keys` of the same keys
(gpg on all 100,000 would take many minutes), and the size of the input keyring.
Run: python -m bench.load_generated
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import click

from bench.common import console, median, report
from bench.keygen import write_keyring
from bench.load_vs_gpg import gpg_import_seconds, meshkp_load

LOAD_TIMEOUT_S = 900


def run(count: int = 100_000, runs: int = 3, gpg_keys: int = 2_000) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    try:
        keyring = work / f"ed25519-{count}.gpg"
        began = time.perf_counter()
        input_bytes = write_keyring(str(keyring), count)
        keygen_s = time.perf_counter() - began
        console.print(f"generated {count} keys in {keygen_s:.1f} s ({count / keygen_s:.0f} keys/s)")
        seconds, disk, summaries = [], [], []
        for attempt in range(runs):
            elapsed, summary, on_disk = meshkp_load(keyring, timeout=LOAD_TIMEOUT_S)
            seconds.append(elapsed)
            disk.append(on_disk)
            summaries.append(summary)
            console.print(f"meshkp load run {attempt + 1}: {elapsed:.1f} s, {on_disk} bytes on disk, "
                          f"{summary.get('totals')}")
        subset = work / "subset.gpg"
        write_keyring(str(subset), gpg_keys)
        gpg_s = gpg_import_seconds(subset)
        console.print(f"gpg --import of {gpg_keys} keys: {gpg_s:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meshkp_rate = count / median(seconds)
    gpg_rate = gpg_keys / gpg_s
    disk_bytes = int(median(disk))
    rows = [
        ["gpg --import (baseline)", gpg_keys, f"{gpg_rate:.0f}", "1.0x", "", ""],
        ["meshkp load", count, f"{meshkp_rate:.0f}", f"{meshkp_rate / gpg_rate:.1f}x",
         disk_bytes, f"{disk_bytes / input_bytes:.2f}"],
    ]
    data = {
        "keys": count, "input_bytes": input_bytes, "keygen_seconds": keygen_s,
        "keygen_keys_per_s": count / keygen_s, "meshkp_seconds": seconds,
        "meshkp_keys_per_s": meshkp_rate, "disk_bytes": disk, "disk_bytes_per_key":
        disk_bytes / count, "disk_vs_input": disk_bytes / input_bytes, "gpg_keys": gpg_keys,
        "gpg_seconds": gpg_s, "gpg_keys_per_s": gpg_rate, "speedup_vs_gpg": meshkp_rate / gpg_rate,
        "summaries": summaries,
    }
    report("load_generated", f"Load {count} generated Ed25519 keys (median of {runs})",
           ["command", "keys", "keys/s", "vs gpg", "bytes on disk", "disk / input"], rows, data)
    return data


@click.command()
@click.option("--count", type=int, default=100_000, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--gpg-keys", type=int, default=2_000, show_default=True)
def main(count: int, runs: int, gpg_keys: int) -> None:
    """Generate COUNT keys, load them with meshkp RUNS times, compare with gpg."""
    run(count, runs, gpg_keys)


if __name__ == "__main__":
    main()
