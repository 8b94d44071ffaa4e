"""What zlib does to replication frames of real keys ([cluster.replication] compression).

The keys: the Hockeypuck test corpus and the Debian keyrings of /usr/share/keyrings, loaded
with `meshkp load` into a fresh store. Their stored records are cut into the frames
replication sends (a push batch of 256 records, a sync batch of 1000 records or 4 MiB, as
ReplicationConfig's defaults), each encoded as the wire frame, then marked with zlib as the
codec does (meshkp/net/compression.py). The baseline is the same frames uncompressed, in the
same run; the figure is the ratio of bytes, and zlib's speed (MB/s of input) beside the
speed of sealing the same bytes (what the transport pays anyway).

    python -m bench.compression_ratio [--runs 3]
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import click

from bench.common import ROOT, meshkp_command, report
from meshkp.bulk.datadir import store_path
from meshkp.net.codec import SealedCodec
from meshkp.net.compression import CompressionStats, mark
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.wire import TCP_FRAME_BYTES, Frame
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import PushBatch, RecordBatch
from meshkp.store.leveldb import LevelDBStore

CORPUS = [*sorted(Path("/work/shared/corpus/hockeypuck").glob("*")),
          *sorted(Path("/usr/share/keyrings").glob("*.gpg"))]


def _load(data_dir: Path) -> list[bytes]:
    files = [str(p) for p in CORPUS if p.is_file() and p.suffix in (".asc", ".gpg", ".pgp")]
    subprocess.run([*meshkp_command(), "load", "--data-dir", str(data_dir), "--no-progress", *files],
                   check=True, capture_output=True, cwd=ROOT, timeout=600)
    store = LevelDBStore(store_path(data_dir))
    try:
        return [record for _, record in store.iter_records()]
    finally:
        store.close()


def _frames(records: list[bytes], per_frame: int, max_bytes: int, push: bool) -> list[Frame]:
    frames, batch, size = [], [], 0
    for record in records:
        if batch and (len(batch) == per_frame or size + len(record) > max_bytes):
            frames.append(_frame(batch, push))
            batch, size = [], 0
        batch.append(record)
        size += len(record)
    if batch:
        frames.append(_frame(batch, push))
    return frames


def _frame(batch: list[bytes], push: bool) -> Frame:
    message = PushBatch(tuple(batch)) if push else RecordBatch(tuple(batch))
    return Frame(message.TYPE, message.to_map())


def _measure(codec: SealedCodec, frames: list[Frame]) -> dict[str, float]:
    plains = [codec.encode(frame, marked=True) for frame in frames]
    stats = CompressionStats()
    began = time.perf_counter()
    marked = [mark(plain, True, stats) for plain in plains]
    zlib_s = time.perf_counter() - began
    began = time.perf_counter()
    for plain in plains:
        codec.seal(plain)
    seal_s = time.perf_counter() - began
    before, after = sum(map(len, plains)), sum(map(len, marked)) - len(marked)
    return {"frames": len(frames), "bytes": before, "zlib_bytes": after, "ratio": after / before,
            "zlib_mb_s": before / zlib_s / 1e6, "seal_mb_s": before / seal_s / 1e6}


def run(runs: int = 3) -> dict[str, dict[str, float]]:
    """The benchmark; median of `runs` timings (the byte counts are the same every run)."""
    with tempfile.TemporaryDirectory(prefix="meshkp-zc-") as tmp:
        records = _load(Path(tmp) / "data")
    config = ReplicationConfig()
    codec = SealedCodec(Keyring([generate_key()]), TCP_FRAME_BYTES,
                        auth=FrameAuth(NodeIdentity.generate()), compression="zlib")
    shapes = {
        "push batch": _frames(records, config.push_batch_records, config.batch_bytes, True),
        "sync batch": _frames(records, config.sync_batch_records, config.batch_bytes, False),
        "one key per frame": _frames(records, 1, config.batch_bytes, True),
    }
    results: dict[str, dict[str, float]] = {}
    rows = []
    for name, frames in shapes.items():
        measured = [_measure(codec, frames) for _ in range(runs)]
        result = {**measured[0],
                  "zlib_mb_s": statistics.median(m["zlib_mb_s"] for m in measured),
                  "seal_mb_s": statistics.median(m["seal_mb_s"] for m in measured)}
        results[name] = result
        rows.append((name, int(result["frames"]), f"{int(result['bytes']):,}",
                     f"{int(result['zlib_bytes']):,}", f"{result['ratio']:.3f}",
                     f"{result['zlib_mb_s']:.0f}", f"{result['seal_mb_s']:.0f}"))
    report("compression_ratio", f"zlib of replication frames, {len(records)} real keys "
           f"(median of {runs})", ["frames", "count", "bytes", "zlib bytes", "zlib/plain",
                                   "zlib MB/s", "seal MB/s"], rows,
           {"keys": len(records), "runs": runs, "results": results})
    return results


@click.command()
@click.option("--runs", type=click.IntRange(1, 20), default=3, show_default=True)
def main(runs: int) -> None:
    """Measure the zlib ratio of replication frames on real keys."""
    run(runs)


if __name__ == "__main__":
    main()
