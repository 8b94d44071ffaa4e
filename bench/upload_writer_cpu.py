"""CPU of one small upload's work on the store's writer thread, and of its parse alone.

What a lone upload runs in its commit job (meshkp/keys/parse.py `parsing_upload`): dearmor,
frame, normalise and verify the self-signatures, decide, index terms, Merkle leaf, and the
LevelDB batch (written without sync: the fsync is the floor, not CPU). One thread, a real
LevelDB, `time.process_time()`, so the figure moves little with the machine's load (a
neighbour's disk traffic or a busy core change the wall-clock benchmarks several-fold, this
by ~10%). Median over RUNS passes of COUNT fresh generated Ed25519 keys each.

    python -m bench.upload_writer_cpu --count 300 --runs 7
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from bench.common import median, report
from bench.keygen import generate_key
from meshkp.keys.commit import UPLOADED, Committer
from meshkp.keys.parse import parsing_upload
from meshkp.limits import Limits
from meshkp.openpgp.armor import armor
from meshkp.openpgp.keytext import parse_keytext
from meshkp.store.leveldb import LevelDBStore


def run(count: int = 300, runs: int = 7) -> dict[str, object]:
    keys = [armor(generate_key(i, seed=b"writer-cpu").data).encode() for i in range(count * runs)]
    limits = Limits()
    store = LevelDBStore(Path(tempfile.mkdtemp(prefix="meshkp-writer-cpu-")) / "db")
    committer = Committer(limits)
    parse_us, job_us = [], []
    try:
        for index in range(runs):
            batch = keys[index * count:(index + 1) * count]
            began = time.process_time()
            for key in batch:
                parse_keytext(key, limits)
            parse_us.append((time.process_time() - began) / count * 1e6)
            began = time.process_time()
            for key in batch:
                committer.apply(store, parsing_upload(key, "bench", None, True), UPLOADED,
                                sync=False)
            job_us.append((time.process_time() - began) / count * 1e6)
    finally:
        store.close()
    rows = [["parse", *(f"{v:.0f}" for v in parse_us), f"{median(parse_us):.0f}"],
            ["commit job", *(f"{v:.0f}" for v in job_us),
             f"{median(job_us):.0f}"]]
    data: dict[str, object] = {"count": count, "runs": runs, "parse_us": parse_us,
                               "job_us": job_us}
    report("upload_writer_cpu", f"µs of CPU per small upload on the writer thread, no fsync ({runs} runs)",
           ["work", *(f"run {i}" for i in range(runs)), "median"], rows, data)
    return data


@click.command()
@click.option("--count", type=int, default=300, show_default=True)
@click.option("--runs", type=int, default=7, show_default=True)
def main(count: int, runs: int) -> None:
    """CPU per small upload of its commit job, and of its parse alone."""
    run(count, runs)


if __name__ == "__main__":
    main()
