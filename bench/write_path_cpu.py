"""CPU of the write path: per upload (KeyService.add) and per received peer record (Replicator).

Everything runs in this process on a real LevelDB store, so `time.process_time()` (CPU of every
thread of the process: the event loop, the store's writer and readers, the parse threads)
measures all the work a write costs. Each figure is also given as a ratio to a baseline
measured in the same run: decoding the same records' bytes (`KeyRecord.decode`), the cost of
reading one key once, so the ratio says how many decodes' worth of CPU a write takes.

- upload: one key per POST /pks/add (what `gpg --send-keys` does), through the key service
  with replication wired as on a node (Merkle leaf in the batch, push of the change to no peer);
- receive new: peer records of keys not held here, pushed in batches of 50 (forward=False, so
  structural checks only, as for anti-entropy);
- receive join: records of the same keys in another state (a subkey more, another node's
  version vector), joined with the stored state;
- receive held: the stored state sent again (a re-sent push): checked against the Merkle leaf.

    python -m bench.write_path_cpu --keys 400 --runs 5
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from bench import common
from bench.common import OUT_DIR
from bench.keygen import generate_key
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.record import KeyRecord
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.openpgp.armor import armor
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import PushBatch
from meshkp.replication.peers import StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore

LIMITS = Limits()
SEED = b"write-path-cpu"
BATCH = 50  # records per push batch: below prepare_min_batch, prepared in this process
CONFIG = ReplicationConfig(sync_interval_s=3600, first_sync_delay_s=3600)


class _NoChannel:
    async def request(self, *_args: object, **_kwargs: object) -> object:
        raise AssertionError("the benchmark node has no peers")


def _node(path: Path) -> tuple[AsyncStore, KeyService, Replicator]:
    """A store, key service and replicator sharing one commit path, as on a node (no pool:
    process_time counts this process only)."""
    store = AsyncStore(LevelDBStore(path))
    committer = Committer(LIMITS)
    service = KeyService(store, "n0", committer, KeyParser(Committer(LIMITS), process_threshold=0))
    replicator = Replicator(store, "n0", committer, CONFIG, StaticPeers(), _NoChannel())
    return store, service, replicator


def _cpu(fn: Callable[[], object]) -> float:
    began = time.process_time()
    fn()
    return time.process_time() - began


async def _acpu(fn: Callable[[], Awaitable[object]]) -> float:
    began = time.process_time()
    await fn()
    return time.process_time() - began


def _inputs(count: int) -> dict[str, list[bytes]]:
    bare, full, uploads = [], [], []
    for i in range(count):
        small = generate_key(i, seed=SEED, with_subkey=False)
        large = generate_key(i, seed=SEED)
        bare.append(KeyRecord.new(normalise(parse_packets(small.data), LIMITS), "p1").encode())
        full.append(KeyRecord.new(normalise(parse_packets(large.data), LIMITS), "p2").encode())
        uploads.append(armor(generate_key(count + i, seed=SEED).data).encode())
    return {"bare": bare, "full": full, "uploads": uploads}


async def _one_run(work: Path, inputs: dict[str, list[bytes]]) -> dict[str, float]:
    """CPU seconds of each phase over all keys, each phase on a fresh node."""
    out: dict[str, float] = {}
    store, service, replicator = _node(work / "upload")
    try:
        async def uploads() -> None:
            for text in inputs["uploads"]:
                report = await service.add(text)
                assert report.accepted
        out["upload"] = await _acpu(uploads)
    finally:
        await replicator.stop()
        await store.close()
    store, service, replicator = _node(work / "receive")
    try:
        def pushes(records: list[bytes]) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                for start in range(0, len(records), BATCH):
                    await replicator.handle("p", PushBatch(tuple(records[start:start + BATCH]), False))
            return send

        out["receive_new"] = await _acpu(pushes(inputs["bare"]))
        out["receive_join"] = await _acpu(pushes(inputs["full"]))
        stored = await replicator.read_records(
            [KeyRecord.decode(data).fingerprint for data in inputs["full"]])
        out["receive_held"] = await _acpu(pushes(stored))
        status = await replicator.status()
        assert status["keys"] == len(inputs["full"]), status
    finally:
        await replicator.stop()
        await store.close()
    return out


def run(keys: int = 400, runs: int = 5) -> dict[str, Any]:
    """The benchmark (bench.run_all calls it with small sizes for --quick)."""
    inputs = _inputs(keys)
    decode = [_cpu(lambda: [KeyRecord.decode(d) for d in inputs["full"]]) / keys
              for _ in range(runs)]
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="write-cpu-") as work:
            for name, seconds in asyncio.run(_one_run(Path(work), inputs)).items():
                phases.setdefault(name, []).append(seconds / keys)
    baseline = statistics.median(decode)
    rows = []
    print(f"{keys} keys, median of {runs} runs; baseline KeyRecord.decode = "
          f"{baseline * 1e6:.1f} us CPU per record")
    print(f"{'phase':>14} {'us CPU / key':>13} {'x decode':>9}")
    for name, samples in phases.items():
        per_key = statistics.median(samples)
        rows.append({"phase": name, "cpu_us": per_key * 1e6, "ratio_to_decode": per_key / baseline})
        print(f"{name:>14} {per_key * 1e6:>13.1f} {per_key / baseline:>9.2f}")
    result = {"keys": keys, "runs": runs, "decode_us": baseline * 1e6, "rows": rows}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"write_path_cpu{common.RESULT_SUFFIX}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


@click.command()
@click.option("--keys", default=400, show_default=True, help="Keys per phase.")
@click.option("--runs", default=5, show_default=True, help="Runs; the median is reported.")
def main(keys: int, runs: int) -> None:
    """CPU per upload and per received peer record, as ratios to one record decode."""
    run(keys, runs)


if __name__ == "__main__":
    main()
