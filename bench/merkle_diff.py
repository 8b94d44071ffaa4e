"""Benchmark: what a Merkle diff costs on the wire, against the lower bound of the ids themselves.

All protocols run on the same pair of trees in each sample, side by side: the v1 descent
(crdt/merkle_diff.py, fanout 16, 16-byte hashes, "merkle"), the compact diff as nodes before
v3 speak it ("v2") and the compact diff v3 ("compact", crdt/recon.py, what nodes speak). The
figure of issue 11 is the protocol's bytes per differing key (target < 100 B; v1 ~950 B);
the replication round around it adds fetch ids and ~170 bytes of framing a message
(bench/replication_antientropy.py counts those).

Two trees over n ids (20-byte fingerprints -> 32-byte SHA-256 digests, as meshkp stores them)
differ in d ids, a random mix of: added on either side, changed digest, deleted on one side.
For each d the diff runs `runs` times on fresh random differences and the median of each
figure is printed. The lower bound is d * (20 + 32) bytes: each differing id and its digest
must cross the wire at least once.

    python -m bench.merkle_diff                      # n = 100,000, d = 1, 10, 100, 1000
    python -m bench.merkle_diff --n 20000 --runs 1   # quicker
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median

from crdt.diff_session import DiffResult, DiffStats
from crdt.merkle import MemoryMerkleStorage, MerkleConfig, MerkleTree
from crdt.merkle_diff import DiffConfig, diff_trees
from crdt.recon import recon_trees
from crdt.recon_wire import V2, V3

ID_BYTES = 20
DIGEST_BYTES = 32


@dataclass(frozen=True)
class Row:
    """Median figures of one d and protocol."""

    protocol: str
    d: int
    round_trips: float
    messages: float
    bytes_sent: float
    bytes_received: float
    bytes_total: float
    hashes: float
    entries: float
    lower_bound: int
    ratio: float
    diff_ms: float

    @property
    def per_key(self) -> float:
        """Protocol bytes (both directions) per differing key."""
        return self.bytes_total / self.d


def build(
    n: int, rng: random.Random, config: MerkleConfig
) -> tuple[MemoryMerkleStorage, list[bytes], float]:
    """A tree of n random ids; returns its storage, the ids, and the build time in seconds."""
    storage = MemoryMerkleStorage()
    tree = MerkleTree(storage, config)
    ids = [rng.randbytes(ID_BYTES) for _ in range(n)]
    started = time.perf_counter()
    batch = tree.batch()
    for item_id in ids:
        batch.put(item_id, rng.randbytes(DIGEST_BYTES))
    storage.apply(batch.writes())
    return storage, ids, time.perf_counter() - started


def perturb(
    base: MemoryMerkleStorage, ids: list[bytes], d: int, rng: random.Random, config: MerkleConfig
) -> tuple[MerkleTree, MerkleTree]:
    """Two copies of `base` that differ in exactly d ids."""
    local_storage, remote_storage = base.copy(), base.copy()
    local, remote = MerkleTree(local_storage, config), MerkleTree(remote_storage, config)
    for index, item_id in enumerate(rng.sample(ids, d)):
        kind = index % 4
        if kind == 0:  # the initiator has an id the responder lacks
            local_storage.apply(local.update(rng.randbytes(ID_BYTES), rng.randbytes(DIGEST_BYTES)))
        elif kind == 1:  # the responder has an id the initiator lacks
            remote_storage.apply(
                remote.update(rng.randbytes(ID_BYTES), rng.randbytes(DIGEST_BYTES))
            )
        elif kind == 2:  # both have it, with different digests
            remote_storage.apply(remote.update(item_id, rng.randbytes(DIGEST_BYTES)))
        else:  # deleted on one side
            local_storage.apply(local.delete(item_id))
    return local, remote


def run(
    n: int = 100_000,
    ds: tuple[int, ...] = (1, 10, 100, 1000),
    runs: int = 3,
    seed: int = 1,
    tree_config: MerkleConfig | None = None,
    diff_config: DiffConfig | None = None,
) -> tuple[list[Row], float]:
    """Median figures per d, and the time to build the n-id tree."""
    tree_config = tree_config or MerkleConfig()
    rng = random.Random(seed)
    base, ids, build_s = build(n, rng, tree_config)
    rows = []
    protocols: dict[str, Callable[[MerkleTree, MerkleTree], tuple[DiffResult, DiffStats]]] = {
        "merkle": lambda a, b: diff_trees(a, b, diff_config),
        "v2": lambda a, b: recon_trees(a, b, version=V2),
        "compact": lambda a, b: recon_trees(a, b, version=V3),
    }
    for d in ds:
        by_protocol: dict[str, list[tuple[DiffStats, float]]] = {name: [] for name in protocols}
        for _ in range(runs):
            local, remote = perturb(base, ids, d, rng, tree_config)
            for name, diff in protocols.items():
                started = time.perf_counter()
                result, stats = diff(local, remote)
                elapsed = time.perf_counter() - started
                if len(result.ids()) != d:
                    raise SystemExit(f"{name} diff found {len(result.ids())} ids, expected {d}")
                by_protocol[name].append((stats, elapsed))
        rows.extend(_row(name, d, samples) for name, samples in by_protocol.items())
    return rows, build_s


def _row(protocol: str, d: int, samples: list[tuple[DiffStats, float]]) -> Row:
    """The median figures of one protocol's samples at one d."""
    lower = d * (ID_BYTES + DIGEST_BYTES)
    total = median([s.bytes_total for s, _ in samples])
    return Row(
        protocol=protocol,
        d=d,
        round_trips=median([s.round_trips for s, _ in samples]),
        messages=median([s.messages for s, _ in samples]),
        bytes_sent=median([s.bytes_sent for s, _ in samples]),
        bytes_received=median([s.bytes_received for s, _ in samples]),
        bytes_total=total,
        hashes=median([s.hashes for s, _ in samples]),
        entries=median([s.entries for s, _ in samples]),
        lower_bound=lower,
        ratio=total / lower,
        diff_ms=median([t for _, t in samples]) * 1000,
    )


def format_table(rows: list[Row]) -> str:
    """A plain-text table of the rows."""
    header = (
        f"{'protocol':>8} {'d':>6} {'rtt':>4} {'msgs':>5} {'sent B':>9} {'recv B':>9} {'total B':>9} "
        f"{'hashes':>7} {'entries':>7} {'bound B':>8} {'ratio':>6} {'B/key':>6} {'ms':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.protocol:>8} {r.d:>6} {r.round_trips:>4g} {r.messages:>5g} {r.bytes_sent:>9.0f} "
            f"{r.bytes_received:>9.0f} {r.bytes_total:>9.0f} {r.hashes:>7.0f} {r.entries:>7.0f} "
            f"{r.lower_bound:>8} {r.ratio:>6.1f} {r.per_key:>6.0f} {r.diff_ms:>7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="ids per tree")
    parser.add_argument("--d", type=int, nargs="+", default=[1, 10, 100, 1000], help="differences")
    parser.add_argument("--runs", type=int, default=3, help="runs per d (median reported)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fanout", type=int, default=MerkleConfig().fanout)
    parser.add_argument("--depth", type=int, default=MerkleConfig().depth)
    parser.add_argument("--hash-bytes", type=int, default=DiffConfig().hash_bytes)
    parser.add_argument("--inline-ids", type=int, default=DiffConfig().inline_ids)
    args = parser.parse_args(argv)
    tree_config = MerkleConfig(args.fanout, args.depth)
    diff_config = DiffConfig(hash_bytes=args.hash_bytes, inline_ids=args.inline_ids)
    rows, build_s = run(args.n, tuple(args.d), args.runs, args.seed, tree_config, diff_config)
    print(
        f"Merkle diff: n={args.n:,} ids ({ID_BYTES} B) -> digests ({DIGEST_BYTES} B), "
        f"fanout={tree_config.fanout} depth={tree_config.depth} "
        f"hash_bytes={diff_config.hash_bytes} inline_ids={diff_config.inline_ids}; "
        f"median of {args.runs} runs; "
        f"tree built in {build_s:.2f} s"
    )
    print("bound = d x (id + digest) bytes; ratio = total bytes / bound")
    print(format_table(rows))


if __name__ == "__main__":
    main()
