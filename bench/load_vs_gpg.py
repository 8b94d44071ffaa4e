"""Figure 1: `meshkp load` of debian-keyring against `gpg --import` of the same file.

Both run as the real commands an operator would type, on the same file, into an empty
GNUPGHOME resp. an empty data directory. gpg takes over a minute here, so by default it is
measured once and meshkp three times (median); `--gpg-runs 3` measures gpg three times too.
Run: python -m bench.load_vs_gpg
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from bench.common import (
    DEBIAN_KEYRING,
    console,
    dir_bytes,
    median,
    meshkp_command,
    report,
    timed_run,
)

GPG_TIMEOUT_S = 900  # gpg needs ~80 s here; this only stops a hung run
LOAD_TIMEOUT_S = 300


def gpg_import_seconds(keyring: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="bench-gnupg-"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    try:
        return timed_run(
            ["gpg", "--batch", "--no-tty", "--quiet", "--import", str(keyring)],
            timeout=GPG_TIMEOUT_S, env=env,
        )
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def meshkp_load(
    keyring: Path, timeout: float = LOAD_TIMEOUT_S
) -> tuple[float, dict[str, object], int]:
    """(seconds, summary JSON, bytes on disk) of one `meshkp load` into a fresh data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-meshkp-"))
    summary_path = data_dir.with_name(data_dir.name + ".json")
    try:
        seconds = timed_run(
            [*meshkp_command(), "load", "--data-dir", str(data_dir), "--no-progress",
             "--summary-json", str(summary_path), str(keyring)],
            timeout=timeout,
        )
        return seconds, json.loads(summary_path.read_text()), dir_bytes(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        summary_path.unlink(missing_ok=True)


@click.command()
@click.option("--runs", type=int, default=3, show_default=True, help="meshkp load runs.")
@click.option("--gpg-runs", type=int, default=1, show_default=True)
@click.option("--keyring", type=click.Path(exists=True, path_type=Path), default=DEBIAN_KEYRING)
def main(runs: int, gpg_runs: int, keyring: Path) -> None:
    """Time meshkp load and gpg --import of the same keyring; print the speed-up."""
    run(runs, gpg_runs, keyring)


def run(runs: int = 3, gpg_runs: int = 1, keyring: Path = DEBIAN_KEYRING) -> dict[str, object]:
    meshkp_times: list[float] = []
    summary: dict[str, object] = {}
    gpg_times: list[float] = []
    # Interleaved (meshkp, gpg, meshkp, ...) so that a change in machine load hits both.
    for attempt in range(max(runs, gpg_runs)):
        if attempt < runs:
            seconds, summary, _disk = meshkp_load(keyring)
            meshkp_times.append(seconds)
            console.print(f"meshkp load run {attempt + 1}: {seconds:.2f} s  {summary.get('totals')}")
        if attempt < gpg_runs:
            seconds = gpg_import_seconds(keyring)
            gpg_times.append(seconds)
            console.print(f"gpg --import run {attempt + 1}: {seconds:.2f} s")
    speedup = median(gpg_times) / median(meshkp_times)
    rows = [
        ["gpg --import (baseline)", len(gpg_times), f"{median(gpg_times):.2f}", "1.0x"],
        ["meshkp load", len(meshkp_times), f"{median(meshkp_times):.2f}", f"{speedup:.1f}x"],
    ]
    data = {
        "keyring": str(keyring),
        "keyring_bytes": keyring.stat().st_size,
        "gpg_seconds": gpg_times,
        "meshkp_seconds": meshkp_times,
        "meshkp_summary": summary,
        "speedup": speedup,
        "target": ">= 10x",
    }
    report("load_vs_gpg", f"Load {keyring.name}: meshkp vs gpg (median)",
           ["command", "runs", "median s", "speed-up"], rows, data)
    return data


if __name__ == "__main__":
    main()
