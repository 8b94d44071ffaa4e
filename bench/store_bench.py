"""Store micro-benchmark: LevelDBStore against raw plyvel writing and reading the same bytes.

100,000 records of ~2 KB with 10 index terms each. Every figure is a ratio to a raw plyvel
baseline in the same run (median of `runs`):
- write, one key per call: LevelDBStore.write([w], sync=False) vs one raw WriteBatch of the
  same key/value pairs (record, 10 index entries, counter) per key;
- write, 1,000 keys per call (the bulk-load path) vs raw batches of the same pairs;
- get and lookup (10 results max) in random order vs raw get / raw prefix iterator;
- synced writes, a sample: sequential LevelDBStore.write(sync=True), and AsyncStore with
  concurrent writers (group commit), vs sequential raw synced batches;
- AsyncStore.get from concurrent tasks (the thread hop) vs direct get.
Run: python -m bench.store_bench [--count N] [--runs R]
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import click
import plyvel

from bench.common import median, report
from meshkp.store import layout
from meshkp.store.executor import AsyncStore, ExecutorConfig
from meshkp.store.leveldb import LevelDBOptions, LevelDBStore
from meshkp.store.protocol import IndexKind, RecordWrite

RECORD_BYTES = 2000
SYNC_SAMPLE = 3000  # synced writes measured (each fsyncs; the full count would take minutes)
ASYNC_TASKS = 32


def make_writes(count: int, seed: int = 1) -> list[RecordWrite]:
    """count new-key writes with ~2 KB incompressible records and 10 index terms each."""
    rng = random.Random(seed)
    pool = rng.randbytes(4 * 1024 * 1024)  # key material is random: snappy cannot shrink it
    words = [b"word%d" % i for i in range(1000)]
    domains = [b"domain%d.org" % i for i in range(100)]
    writes = []
    for n in range(count):
        fpr = rng.randbytes(20)
        offset = rng.randrange(len(pool) - RECORD_BYTES)
        local, domain = b"user%d" % n, rng.choice(domains)
        terms = frozenset({
            (IndexKind.FINGERPRINT, fpr),
            (IndexKind.KEY_ID64, fpr[-8:]),
            (IndexKind.KEY_ID32, fpr[-4:]),
            (IndexKind.EMAIL, local + b"@" + domain),
            (IndexKind.KEYWORD, local + b"@" + domain),
            (IndexKind.KEYWORD, local),
            (IndexKind.KEYWORD, domain),
            (IndexKind.KEYWORD, rng.choice(words)),
            (IndexKind.KEYWORD, rng.choice(words) + b"x"),
            (IndexKind.KEYWORD, b"example"),
        })
        writes.append(RecordWrite(fpr, pool[offset : offset + RECORD_BYTES], new_terms=terms,
                                  counters={"keys": 1}))
    return writes


def raw_pairs(write: RecordWrite, keys_before: int) -> list[tuple[bytes, bytes]]:
    """The key/value pairs LevelDBStore writes for one new key (layout.py)."""
    assert write.record is not None
    pairs = [(layout.record_key(write.fingerprint), write.record)]
    pairs += [(layout.index_key(kind, term, write.fingerprint), b"") for kind, term in
              sorted(write.new_terms)]
    pairs.append((layout.counter_key("keys"), layout.encode_counter(keys_before + 1)))
    return pairs


def _rate(count: int, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return count / (time.perf_counter() - began)


def _raw_db(path: Path, options: LevelDBOptions) -> plyvel.DB:
    return plyvel.DB(str(path), create_if_missing=True, write_buffer_size=options.write_buffer_bytes,
                     lru_cache_size=options.block_cache_bytes,
                     bloom_filter_bits=options.bloom_filter_bits,
                     max_open_files=options.max_open_files)


def _store_writes(path: Path, writes: Sequence[RecordWrite], per_call: int, sync: bool) -> float:
    store = LevelDBStore(path)
    def run() -> None:
        for i in range(0, len(writes), per_call):
            store.write(writes[i : i + per_call], sync=sync)

    try:
        return _rate(len(writes), run)
    finally:
        store.close()


def _raw_writes(path: Path, pairs: Sequence[list[tuple[bytes, bytes]]], per_call: int,
                sync: bool) -> float:
    db = _raw_db(path, LevelDBOptions())

    def run() -> None:
        for i in range(0, len(pairs), per_call):
            with db.write_batch(sync=sync) as batch:
                for key_pairs in pairs[i : i + per_call]:
                    for key, value in key_pairs:
                        batch.put(key, value)

    try:
        return _rate(len(pairs), run)
    finally:
        db.close()


def _async_writes(path: Path, writes: Sequence[RecordWrite]) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        astore = AsyncStore(LevelDBStore(path), ExecutorConfig())

        async def writer(first: int) -> None:
            for i in range(first, len(writes), ASYNC_TASKS):
                await astore.write([writes[i]], sync=True)

        began = time.perf_counter()
        await asyncio.gather(*(writer(t) for t in range(ASYNC_TASKS)))
        rate = len(writes) / (time.perf_counter() - began)
        per_commit = astore.stats.writes_committed / max(astore.stats.commits, 1)
        await astore.close()
        return rate, per_commit

    return asyncio.run(main())


def _reads(path: Path, fprs: Sequence[bytes], terms: Sequence[bytes]) -> dict[str, float]:
    store = LevelDBStore(path)
    try:
        get = _rate(len(fprs), lambda: [store.get(f) for f in fprs])
        lookup = _rate(len(terms), lambda: [store.lookup(IndexKind.EMAIL, t, 10) for t in terms])
    finally:
        store.close()
    db = _raw_db(path, LevelDBOptions())
    try:
        raw_get = _rate(len(fprs), lambda: [db.get(layout.RECORD + f) for f in fprs])

        def raw_lookups() -> None:
            for term in terms:
                prefix = layout.index_prefix(IndexKind.EMAIL, term)
                with db.iterator(prefix=prefix, include_value=False) as keys:
                    [key[len(prefix):] for key in islice(keys, 10)]

        raw_lookup = _rate(len(terms), raw_lookups)
    finally:
        db.close()
    return {"get": get, "raw_get": raw_get, "lookup": lookup, "raw_lookup": raw_lookup}


def _async_gets(path: Path, fprs: Sequence[bytes]) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        astore = AsyncStore(LevelDBStore(path))

        async def reader(first: int) -> None:
            for i in range(first, len(fprs), ASYNC_TASKS):
                await astore.get(fprs[i])

        began = time.perf_counter()
        await asyncio.gather(*(reader(t) for t in range(ASYNC_TASKS)))
        rate = len(fprs) / (time.perf_counter() - began)
        direct = _rate(len(fprs), lambda: [astore.store.get(f) for f in fprs])
        await astore.close()
        return rate, direct

    return asyncio.run(main())


def run(count: int = 100_000, runs: int = 3) -> dict[str, object]:
    """Measure and report; returns the figures (also in bench/out/store_bench.json)."""
    writes = make_writes(count)
    pairs = [raw_pairs(w, i) for i, w in enumerate(writes)]
    rng = random.Random(2)
    fprs = [w.fingerprint for w in rng.sample(writes, len(writes))]
    emails = [next(t for k, t in w.new_terms if k is IndexKind.EMAIL)
              for w in rng.sample(writes, len(writes))]
    sample = writes[:SYNC_SAMPLE]
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        for attempt in range(runs):
            run_dir = work / str(attempt)
            note("write_1", _store_writes(run_dir / "s1", writes, 1, sync=False))
            note("raw_write_1", _raw_writes(run_dir / "r1", pairs, 1, sync=False))
            note("write_1000", _store_writes(run_dir / "s1000", writes, 1000, sync=False))
            note("raw_write_1000", _raw_writes(run_dir / "r1000", pairs, 1000, sync=False))
            for name, value in _reads(run_dir / "s1", fprs, emails).items():
                note(name, value)
            async_get, direct_get = _async_gets(run_dir / "s1", fprs[: count // 5])
            note("async_get", async_get)
            note("direct_get", direct_get)
            note("sync_write", _store_writes(run_dir / "sync", sample, 1, sync=True))
            note("raw_sync_write", _raw_writes(run_dir / "rsync", pairs[:SYNC_SAMPLE], 1, sync=True))
            rate, per_commit = _async_writes(run_dir / "async", sample)
            note("async_sync_write", rate)
            note("writes_per_commit", per_commit)
            shutil.rmtree(run_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: median(values) for name, values in figures.items()}
    comparisons = [
        ("write, 1 key per call, no sync", "write_1", "raw_write_1"),
        ("write, 1,000 keys per call, no sync", "write_1000", "raw_write_1000"),
        ("get by fingerprint", "get", "raw_get"),
        ("lookup by e-mail (limit 10)", "lookup", "raw_lookup"),
        ("synced write, sequential", "sync_write", "raw_sync_write"),
        (f"synced write, AsyncStore x{ASYNC_TASKS} tasks", "async_sync_write", "raw_sync_write"),
        (f"AsyncStore.get x{ASYNC_TASKS} tasks vs direct get", "async_get", "direct_get"),
    ]
    rows = [(label, f"{med[a]:,.0f}", f"{med[b]:,.0f}", f"{med[a] / med[b]:.2f}")
            for label, a, b in comparisons]
    rows.append(("writes per group commit (AsyncStore)", f"{med['writes_per_commit']:.1f}", "", ""))
    data = {"count": count, "runs": runs, "median_per_s": med, "all_runs": figures,
            "ratios": {label: med[a] / med[b] for label, a, b in comparisons}}
    report("store_bench", f"Store vs raw plyvel, {count:,} keys of ~2 KB, 10 terms, median of {runs}",
           ["operation", "store /s", "baseline /s", "ratio"], rows, data)
    return data


@click.command()
@click.option("--count", default=100_000, show_default=True, help="Keys written and read.")
@click.option("--runs", default=3, show_default=True, help="Runs; figures are medians.")
def main(count: int, runs: int) -> None:
    """Benchmark LevelDBStore and AsyncStore against raw plyvel."""
    run(count, runs)


if __name__ == "__main__":
    main()
