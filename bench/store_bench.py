"""Store micro-benchmark: LevelDBStore against raw plyvel writing and reading the same bytes.

100,000 records of ~2 KB with 10 index terms each. Every figure is a ratio to a raw plyvel
baseline in the same run (median of `runs`). Store and baseline are timed in alternating chunks
(1,000 keys, or 100 synced writes), so other load on the machine hits both alike:
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
from meshkp.store.executor import AsyncStore
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


class _Paired:
    """Accumulates the time of two contenders measured in alternating chunks."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0]

    def time(self, which: int, action: Callable[..., object], *args: object) -> None:
        began = time.perf_counter()
        action(*args)
        self.seconds[which] += time.perf_counter() - began

    def rates(self, count: int) -> tuple[float, float]:
        return count / self.seconds[0], count / self.seconds[1]


def _chunks(count: int, size: int) -> list[range]:
    return [range(i, min(i + size, count)) for i in range(0, count, size)]


def _raw_db(path: Path) -> plyvel.DB:
    options = LevelDBOptions()  # the same tuning as LevelDBStore
    return plyvel.DB(str(path), create_if_missing=True, write_buffer_size=options.write_buffer_bytes,
                     lru_cache_size=options.block_cache_bytes,
                     bloom_filter_bits=options.bloom_filter_bits,
                     max_open_files=options.max_open_files)


def _raw_write(db: plyvel.DB, pairs: Sequence[list[tuple[bytes, bytes]]], sync: bool) -> None:
    with db.write_batch(sync=sync) as batch:
        for key_pairs in pairs:
            for key, value in key_pairs:
                batch.put(key, value)


def _store_calls(store: LevelDBStore, writes: Sequence[RecordWrite], per_call: int,
                 sync: bool) -> None:
    for i in range(0, len(writes), per_call):
        store.write(writes[i : i + per_call], sync=sync)


def _raw_calls(db: plyvel.DB, pairs: Sequence[list[tuple[bytes, bytes]]], per_call: int,
               sync: bool) -> None:
    for i in range(0, len(pairs), per_call):
        _raw_write(db, pairs[i : i + per_call], sync)


def _writes(work: Path, writes: Sequence[RecordWrite], pairs: Sequence[list[tuple[bytes, bytes]]],
            per_call: int, sync: bool, chunk: int) -> tuple[float, float]:
    """(store, raw) writes/s, the two written in alternating chunks to two fresh databases."""
    store, db = LevelDBStore(work / f"store-{per_call}-{sync}"), _raw_db(work / f"raw-{per_call}-{sync}")
    paired = _Paired()
    try:
        for part in _chunks(len(writes), chunk):
            paired.time(0, _store_calls, store, writes[part.start : part.stop], per_call, sync)
            paired.time(1, _raw_calls, db, pairs[part.start : part.stop], per_call, sync)
    finally:
        store.close()
        db.close()
    return paired.rates(len(writes))


def _reads(path: Path, fprs: Sequence[bytes], terms: Sequence[bytes]) -> dict[str, float]:
    """Store reads against raw plyvel reads of the same database handle, alternating chunks."""
    store = LevelDBStore(path)
    db = store._db  # the very same DB and block cache: only the store's code differs
    db.compact_range()  # let background compaction of the load finish before measuring
    gets, lookups = _Paired(), _Paired()

    def store_gets(batch: Sequence[bytes]) -> None:
        for fingerprint in batch:
            store.get(fingerprint)

    def raw_gets(batch: Sequence[bytes]) -> None:
        for fingerprint in batch:
            db.get(layout.RECORD + fingerprint)

    def store_lookups(names: Sequence[bytes]) -> None:
        for term in names:
            store.lookup(IndexKind.EMAIL, term, 10)

    def raw_lookups(names: Sequence[bytes]) -> None:
        for term in names:
            prefix = layout.index_prefix(IndexKind.EMAIL, term)
            with db.iterator(prefix=prefix, include_value=False) as keys:
                [key[len(prefix) :] for key in islice(keys, 10)]

    try:
        raw_gets(fprs)  # one warm-up pass over every key
        for part in _chunks(len(fprs), 2000):
            gets.time(0, store_gets, fprs[part.start : part.stop])
            gets.time(1, raw_gets, fprs[part.start : part.stop])
        for part in _chunks(len(terms), 2000):
            lookups.time(0, store_lookups, terms[part.start : part.stop])
            lookups.time(1, raw_lookups, terms[part.start : part.stop])
    finally:
        store.close()
    get, raw_get = gets.rates(len(fprs))
    lookup, raw_lookup = lookups.rates(len(terms))
    return {"get": get, "raw_get": raw_get, "lookup": lookup, "raw_lookup": raw_lookup}


def _async_gets(path: Path, fprs: Sequence[bytes]) -> tuple[float, float]:
    """(AsyncStore.get from ASYNC_TASKS tasks, direct get) per second, alternating chunks."""

    async def main() -> tuple[float, float]:
        astore = AsyncStore(await asyncio.to_thread(LevelDBStore, path))
        paired = _Paired()

        async def concurrent(batch: Sequence[bytes]) -> None:
            async def reader(first: int) -> None:
                for i in range(first, len(batch), ASYNC_TASKS):
                    await astore.get(batch[i])

            await asyncio.gather(*(reader(t) for t in range(ASYNC_TASKS)))

        def direct(batch: Sequence[bytes]) -> None:
            for fingerprint in batch:
                astore.store.get(fingerprint)

        for part in _chunks(len(fprs), 2000):
            began = time.perf_counter()
            await concurrent(fprs[part.start : part.stop])
            paired.seconds[0] += time.perf_counter() - began
            paired.time(1, direct, fprs[part.start : part.stop])
        await astore.close()
        return paired.rates(len(fprs))

    return asyncio.run(main())


def _async_sync_writes(work: Path, writes: Sequence[RecordWrite],
                       pairs: Sequence[list[tuple[bytes, bytes]]]) -> tuple[float, float, float]:
    """(AsyncStore synced writes/s from ASYNC_TASKS tasks, raw sequential synced writes/s,
    writes per commit), alternating chunks."""

    async def main() -> tuple[float, float, float]:
        astore = AsyncStore(await asyncio.to_thread(LevelDBStore, work / "async"))
        db = await asyncio.to_thread(_raw_db, work / "raw-sync-seq")
        paired = _Paired()
        for part in _chunks(len(writes), 300):
            async def writer(first: int, part: range = part) -> None:
                for i in range(part.start + first, part.stop, ASYNC_TASKS):
                    await astore.write([writes[i]], sync=True)

            began = time.perf_counter()
            await asyncio.gather(*(writer(t) for t in range(ASYNC_TASKS)))
            paired.seconds[0] += time.perf_counter() - began
            began = time.perf_counter()
            await asyncio.to_thread(_raw_calls, db, pairs[part.start : part.stop], 1, True)
            paired.seconds[1] += time.perf_counter() - began
        per_commit = astore.stats.writes_committed / max(astore.stats.commits, 1)
        await astore.close()
        db.close()
        return (*paired.rates(len(writes)), per_commit)

    return asyncio.run(main())


def run(count: int = 100_000, runs: int = 3) -> dict[str, object]:
    """Measure and report; returns the figures (also in bench/out/store_bench.json)."""
    writes = make_writes(count)
    pairs = [raw_pairs(w, i) for i, w in enumerate(writes)]
    rng = random.Random(2)
    fprs = [w.fingerprint for w in rng.sample(writes, len(writes))]
    emails = [next(t for k, t in w.new_terms if k is IndexKind.EMAIL)
              for w in rng.sample(writes, len(writes))]
    sync_sample = min(SYNC_SAMPLE, count)
    figures: dict[str, list[float]] = {}

    def note(names: tuple[str, ...], values: Sequence[float]) -> None:
        for name, value in zip(names, values, strict=True):
            figures.setdefault(name, []).append(value)

    work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        for attempt in range(runs):
            run_dir = work / str(attempt)
            note(("write_1", "raw_write_1"), _writes(run_dir, writes, pairs, 1, False, 1000))
            note(("write_1000", "raw_write_1000"), _writes(run_dir, writes, pairs, 1000, False, 10_000))
            reads = _reads(run_dir / "store-1-False", fprs, emails)
            note(tuple(reads), tuple(reads.values()))
            note(("async_get", "direct_get"), _async_gets(run_dir / "store-1-False", fprs[: count // 5]))
            note(("sync_write", "raw_sync_write"),
                 _writes(run_dir, writes[:sync_sample], pairs[:sync_sample], 1, True, 100))
            note(("async_sync_write", "raw_sync_write_2", "writes_per_commit"),
                 _async_sync_writes(run_dir, writes[:sync_sample], pairs[:sync_sample]))
            shutil.rmtree(run_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: median(values) for name, values in figures.items()}
    comparisons = [
        ("write, 1 key per call, no sync", "write_1", "raw_write_1"),
        ("write, 1,000 keys per call, no sync", "write_1000", "raw_write_1000"),
        ("get by fingerprint", "get", "raw_get"),
        ("lookup by e-mail (limit 10)", "lookup", "raw_lookup"),
        ("synced write, 1 key per call, sequential", "sync_write", "raw_sync_write"),
        (f"synced write, AsyncStore x{ASYNC_TASKS} tasks vs raw sequential", "async_sync_write",
         "raw_sync_write_2"),
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
