"""Anti-entropy cost: two nodes with N keys in common differing by d keys (issue 5 figures).

Two Replicators on real LevelDB stores talk through the loopback channel, which runs every
message through the real frame codec and counts its bytes plus the TCP length prefix and
sealing overhead, i.e. the bytes on the wire. For each d, node B lacks d of A's keys; one
round from B moves them. Reported: wire bytes of the round, time to converge, the bytes of the
d records themselves (ratio, target < 3 for d >= 10), and the ratio to the full N-key transfer
(an empty node pulling all N keys: a bootstrap scan, then a diff of equal trees).

Each d runs once per diff protocol (`--protocols`, default both: the v1 Merkle descent and
the compact diff of crdt/recon.py) on fresh copies of the same two stores, side by side in one
run, `--runs` times (median). The overhead per differing key is (wire bytes of the round -
the d records' bytes) / d: hashes, listings, fetch ids, acks and ~170 bytes of framing
(length prefix, sealing, signature) per message.

The generated keys are tiny (~420 B: one user ID, one subkey), while the v1 diff costs a
fixed ~950 B per differing id (fanout 16, depth 4, 16-byte hashes), so their ratio is the
worst case. With `--real-keys` (default: the Debian keyring, if present) the d differing keys are
also taken from real keys (the N - d common ones stay generated), which is what a keyserver
mostly holds.

    python -m bench.replication_antientropy --keys 100000
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from bench.common import DEBIAN_KEYRING, OUT_DIR
from bench.keygen import generate_keyring
from meshkp.keys.commit import PULLED, Committer, joining
from meshkp.keys.record import KeyRecord
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.keytext import parse_keytext, split_stream
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.loopback import LoopbackNetwork
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


def real_records(path: Path, count: int, seed: int = 5) -> list[KeyRecord]:
    """`count` keys of a real keyring, normalised as an upload would be, chosen at random."""
    certs = [c for c in parse_keytext(path.read_bytes()) if isinstance(c, Certificate)]
    chosen = random.Random(seed).sample(certs, min(count, len(certs)))
    return [KeyRecord.new(c, "a") for c in chosen]


def fill(path: Path, recs: list[KeyRecord]) -> None:
    store = LevelDBStore(path)
    committer = Committer(Limits())
    for start in range(0, len(recs), 2000):
        committer.apply(store, joining(recs[start:start + 2000]), PULLED, sync=False)
    store.close()


async def one_round(a_dir: Path, b_dir: Path, protocol: str = "compact"
                    ) -> tuple[int, int, int, float]:
    net = LoopbackNetwork()
    cfg = ReplicationConfig(sync_interval_s=3600, first_sync_delay_s=3600, request_timeout_s=600,
                            diff_protocol=protocol)
    stores = [AsyncStore(LevelDBStore(a_dir)), AsyncStore(LevelDBStore(b_dir))]
    a = Replicator(stores[0], "a", Committer(Limits()), cfg, StaticPeers([PeerRef("b", ("x", 0))]),
                   net.channel("a"))
    b = Replicator(stores[1], "b", Committer(Limits()), cfg, StaticPeers([PeerRef("a", ("x", 0))]),
                   net.channel("b"))
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


def measure(common: Path, work: Path, extra: list[KeyRecord], label: str,
            protocol: str = "compact", runs: int = 1) -> dict[str, Any]:
    """A round from a node lacking `extra` to one holding it, both on copies of `common`
    (`runs` times on fresh copies; the median run by wire bytes)."""
    d = len(extra)
    a_dir, b_dir = work / f"a{label}{d}", work / f"b{label}{d}"
    samples = []
    for _ in range(runs):
        shutil.copytree(common, a_dir)
        shutil.copytree(common, b_dir)
        try:
            fill(a_dir, extra)
            samples.append(asyncio.run(one_round(a_dir, b_dir, protocol)))
        finally:
            shutil.rmtree(a_dir, ignore_errors=True)
            shutil.rmtree(b_dir, ignore_errors=True)
    wire, pulled, requests, seconds = sorted(samples)[len(samples) // 2]
    record_bytes = sum(len(r.encode()) for r in extra)
    overhead = (wire - record_bytes) / d
    print(f"{label or 'generated':9s} {protocol:7s} d={d:5d} wire={wire:10d} B "
          f"records={record_bytes:10d} B ratio={wire / record_bytes:6.2f} "
          f"overhead/key={overhead:7.1f} B requests={requests} converge={seconds:.3f} s")
    return {"keys": label or "generated", "protocol": protocol, "d": d, "wire_bytes": wire,
            "record_bytes": record_bytes, "ratio": wire / record_bytes,
            "overhead_per_key": overhead, "requests": requests, "seconds": seconds,
            "pulled": pulled, "mean_record_bytes": record_bytes / d, "runs": runs}


@click.command()
@click.option("--keys", "n", default=100_000, show_default=True)
@click.option("--diffs", default="1,10,100,1000", show_default=True)
@click.option("--real-keys", type=click.Path(dir_okay=False, path_type=Path),
              default=DEBIAN_KEYRING, show_default=True,
              help="Keyring whose keys are also used as the d differing keys (d <= 100).")
@click.option("--protocols", default="merkle,compact", show_default=True,
              help="Diff protocols to measure side by side (ReplicationConfig.diff_protocol).")
@click.option("--runs", default=1, show_default=True, help="Rounds per d and protocol (median).")
def main(n: int, diffs: str, real_keys: Path, protocols: str, runs: int) -> None:
    """Anti-entropy cost between two N-key nodes differing by d keys."""
    run(n, diffs, real_keys, protocols, runs)


def run(keys: int = 100_000, diffs: str = "1,10,100,1000", real_keys: Path | None = DEBIAN_KEYRING,
        protocols: str = "merkle,compact", runs: int = 1) -> None:
    """The benchmark (bench.run_all calls it with small sizes for --quick)."""
    n = keys
    ds = [int(d) for d in diffs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ae-bench-"))
    began = time.perf_counter()
    recs = records(n, b"ae-bench")
    print(f"generated {n} keys in {time.perf_counter() - began:.1f} s")
    rows = []
    try:
        common = work / "common"
        fill(common, recs[: n - max(ds)])
        names = protocols.split(",")
        for d in ds:
            for protocol in names:
                rows.append(measure(common, work, recs[n - max(ds): n - max(ds) + d], "",
                                    protocol, runs))
        real_ds = [d for d in ds if 10 <= d <= 100]
        if real_keys is not None and real_keys.exists() and real_ds:
            real = real_records(real_keys, max(real_ds))
            for d in (d for d in real_ds if d <= len(real)):
                for protocol in names:
                    rows.append(measure(common, work, real[:d], "real", protocol, runs))
        full_dir = work / "empty"
        full_dir.mkdir()
        wire, pulled, requests, seconds = asyncio.run(one_round(common, full_dir))
        print(f"full transfer of {pulled} keys: wire={wire} B in {seconds:.1f} s")
        print(f"full transfer: {wire / max(1, pulled):.0f} wire bytes per key")
        for row in rows:
            row["vs_full"] = row["wire_bytes"] / wire
            print(f"{row['keys']:9s} {row['protocol']:7s} d={row['d']:5d} "
                  f"wire/full = {row['vs_full']:.5f}")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "replication_antientropy.json").write_text(json.dumps(
            {"keys": n, "rows": rows, "full": {"keys": pulled, "wire_bytes": wire, "seconds": seconds}},
            indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
