"""Anti-entropy cost: two nodes with N keys in common differing by d keys (issue 5 figures).

Two Replicators on real LevelDB stores talk through the loopback channel, which runs every
message through the real frame codec and counts its bytes plus the TCP length prefix and
sealing overhead, i.e. the bytes on the wire. For each d, node B lacks d of A's keys; one
round from B moves them. Reported: wire bytes of the round, time to converge, the bytes of the
d records themselves (ratio, target < 3 for d >= 10), and the ratio to the full N-key transfer.

    python -m bench.replication_antientropy --keys 100000
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import click

from bench.common import OUT_DIR
from bench.keygen import generate_keyring
from meshkp.limits import Limits
from meshkp.openpgp.certificate import certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.keytext import split_stream
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.record import KeyRecord
from meshkp.replication.apply import merge_into_store
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.loopback import LoopbackNetwork
from meshkp.replication.merkle_index import MerkleIndex
from meshkp.replication.peers import PeerRef, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore


def records(count: int, seed: bytes) -> list[KeyRecord]:
    ring = b"".join(generate_keyring(count, seed=seed))
    out = []
    for key in split_stream(parse_packets(ring)):
        packets = list(key.packets)
        fpr = parse_public_key(packets[0].body).fingerprint
        out.append(KeyRecord.new(certificate_from_packets(fpr, packets), "a"))
    return out


def fill(path: Path, recs: list[KeyRecord]) -> None:
    store = LevelDBStore(path)
    for start in range(0, len(recs), 2000):
        merge_into_store(store, recs[start:start + 2000], MerkleIndex(), Limits(), sync=False)
    store.close()


async def one_round(a_dir: Path, b_dir: Path) -> tuple[int, int, int, float]:
    net = LoopbackNetwork()
    cfg = ReplicationConfig(sync_interval_s=3600, first_sync_delay_s=3600, request_timeout_s=600)
    stores = [AsyncStore(LevelDBStore(a_dir)), AsyncStore(LevelDBStore(b_dir))]
    a = Replicator(stores[0], "a", Limits(), cfg, StaticPeers([PeerRef("b", ("x", 0))]), net.channel("a"))
    b = Replicator(stores[1], "b", Limits(), cfg, StaticPeers([PeerRef("a", ("x", 0))]), net.channel("b"))
    net.add("a", a)
    net.add("b", b)
    began = time.perf_counter()
    outcome = await b.sync_with(PeerRef("a", ("x", 0)))
    elapsed = time.perf_counter() - began
    assert outcome is not None, b.statuses["a"].last_result
    assert (await a.status())["merkle_root"] == (await b.status())["merkle_root"]
    for store in stores:
        await store.close()
    return outcome.meter.sent + outcome.meter.received, outcome.keys_pulled, outcome.meter.requests, elapsed


@click.command()
@click.option("--keys", "n", default=100_000, show_default=True)
@click.option("--diffs", default="1,10,100,1000", show_default=True)
def main(n: int, diffs: str) -> None:
    ds = [int(d) for d in diffs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ae-bench-"))
    began = time.perf_counter()
    recs = records(n, b"ae-bench")
    print(f"generated {n} keys in {time.perf_counter() - began:.1f} s")
    rows = []
    try:
        common = work / "common"
        fill(common, recs[: n - max(ds)])
        for d in ds:
            a_dir, b_dir = work / f"a{d}", work / f"b{d}"
            shutil.copytree(common, a_dir)
            shutil.copytree(common, b_dir)
            extra = recs[n - max(ds): n - max(ds) + d]
            fill(a_dir, extra)
            wire, pulled, requests, seconds = asyncio.run(one_round(a_dir, b_dir))
            record_bytes = sum(len(r.encode()) for r in extra)
            rows.append({"d": d, "wire_bytes": wire, "record_bytes": record_bytes,
                         "ratio": wire / record_bytes, "requests": requests,
                         "seconds": seconds, "pulled": pulled})
            print(f"d={d:5d} wire={wire:10d} B records={record_bytes:10d} B "
                  f"ratio={wire / record_bytes:6.2f} requests={requests} converge={seconds:.3f} s")
            shutil.rmtree(a_dir)
            shutil.rmtree(b_dir)
        full_dir = work / "empty"
        full_dir.mkdir()
        wire, pulled, requests, seconds = asyncio.run(one_round(common, full_dir))
        print(f"full transfer of {pulled} keys: wire={wire} B in {seconds:.1f} s")
        for row in rows:
            row["vs_full"] = row["wire_bytes"] / wire
            print(f"d={row['d']:5d} wire/full = {row['vs_full']:.5f}")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "replication_antientropy.json").write_text(json.dumps(
            {"keys": n, "rows": rows, "full": {"keys": pulled, "wire_bytes": wire, "seconds": seconds}},
            indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
