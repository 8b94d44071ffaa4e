"""LevelDBStore: the Store contract on plyvel, one WriteBatch per write() (layout in layout.py).

Durability: `write(..., sync=True)` is one `WriteBatch` written with `sync`, i.e. the LevelDB
log is fsync'ed before write() returns, so an acknowledged write survives kill -9 and power
loss; recovery replays the log on the next open. The batch is atomic: after a crash either all
of a write's record, index, counter and extra changes are there or none is.

Threads: LevelDB is safe for concurrent reads and writes, and plyvel releases the GIL inside
LevelDB calls, so reads scale on a thread pool. write() is serialised by a lock because counters
are read-modify-write (read the value, add the delta, put it in the batch); AsyncStore's single
writer thread keeps that lock uncontended. LevelDB's LOCK file keeps other processes out.
plyvel's close() frees the C++ DB even while another thread is inside it (a crash), so every
call is counted in and out, and close() waits for the calls in flight.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import plyvel

from meshkp.errors import StoreClosed, StoreError, StoreFull
from meshkp.store import integrity, layout
from meshkp.store.batch import apply_bulk, apply_writes
from meshkp.store.protocol import BulkWrite, IndexKind, RecordWrite

log = logging.getLogger(__name__)

# Rows read per chunk of iter_records / iter_extra. Each chunk opens a fresh LevelDB iterator on
# the call's snapshot while counted in (see module doc), so a slow consumer never holds a live
# iterator across yields; 256 rows of ~2 KB is ~0.5 MB per chunk.
SCAN_CHUNK_ROWS = 256

MiB = 1024 * 1024
# Free space a write after a full disk needs beyond the memtable it first flushes (new log,
# manifest record, table overhead).
FULL_MARGIN_BYTES = 1 * MiB
# What LevelDB's IOError says when a write hit ENOSPC (its Status carries strerror's text).
_NO_SPACE = "No space left on device"


@dataclass(frozen=True, slots=True)
class LevelDBOptions:
    """LevelDB tuning; the defaults suit one node of a local mesh of ~10 up to a few million keys."""

    # The memtable (LevelDB default 4 MiB). Larger means fewer, larger level-0 files and faster
    # bulk loads (meshkp load, bootstrap of 100,000 keys); it costs up to twice this in RAM (the
    # active and the flushing memtable) and a longer log replay on open after a crash (the log
    # holds at most one memtable, so < 1 s). 16 MiB keeps a 10-node local mesh under ~350 MiB.
    write_buffer_bytes: int = 16 * MiB
    # Uncompressed block cache (LevelDB default 8 MiB). op=get and index lookups are point reads
    # of hot keys; the OS page cache holds the compressed files too, so this only needs the
    # working set of hot blocks. Filled lazily, so idle nodes do not pay for it.
    block_cache_bytes: int = 64 * MiB
    # Bloom filter bits per key (LevelDB default: none). 10 bits give ~1% false positives, so
    # a get() of an absent fingerprint (every new upload, every sync pull) skips the tables
    # that cannot hold it instead of reading one block per level. Prefix scans do not use it.
    bloom_filter_bits: int = 10
    # Open table files (LevelDB default 1000). With 2 MiB tables that covers ~2 GB before the
    # table cache starts reopening files; an SKS-size dump (~12 GB) wants more, and needs a
    # higher `ulimit -n` too.
    max_open_files: int = 1000


class LevelDBStore:
    """Store on a LevelDB directory; the constructor opens it (creating it if missing)."""

    def __init__(self, path: str | os.PathLike[str], options: LevelDBOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or LevelDBOptions()
        self._write_lock = threading.Lock()
        # Counter values as last written, so a write need not read each counter it bumps. Safe
        # because this object is the database's only writer (write lock + LevelDB's LOCK file).
        self._counter_cache: dict[str, int] = {}
        # Calls in flight, counted under a plain Lock (cheap on every read); close() sets _closed
        # and waits for _idle, which the last call out sets.
        self._state = threading.Lock()
        self._idle = threading.Event()
        self._in_flight = 0
        self._closed = False
        # A full disk is one episode, logged when it starts and when a write succeeds again,
        # not once per refused write (every upload and sync pull would log it otherwise).
        self._full = False
        self.refused_full = 0  # writes refused for a full disk, since the start
        self._db = _open(self.path, self.options)
        try:
            _check_schema(self._db, self.path)
            rows = integrity.check_tables(self._db, self.path)
        except plyvel.Error as exc:  # a table the schema read needed is damaged or truncated
            self._db.close()
            raise integrity.corrupt(self.path, exc) from exc
        except BaseException:
            self._db.close()
            raise
        log.info("event=store_opened path=%s schema=%d rows_checked=%d", self.path,
                 layout.SCHEMA_VERSION, rows)

    def get(self, fingerprint: bytes) -> bytes | None:
        """The encoded record of a primary fingerprint, or None."""
        return self._get("get", layout.record_key(layout.require_bytes("fingerprint", fingerprint)))

    def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]:
        """Primary fingerprints indexed under `term`, in fingerprint order, at most `limit`."""
        kind = layout.require_kind(kind)
        layout.require_bytes("term", term)
        layout.require_limit(limit)
        if limit == 0 or not layout.is_storable_term(term):
            return []
        prefix = layout.index_prefix(kind, term)
        cut = len(prefix)
        self._enter()
        try:
            with self._db.iterator(prefix=prefix, include_value=False, verify_checksums=True) as keys:
                return [key[cut:] for key in islice(keys, limit)]
        except plyvel.Error as exc:
            raise self._failed("lookup", exc) from exc
        finally:
            self._exit()

    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        """Apply all writes, in order, as one atomic WriteBatch; with sync, fsync'ed before return."""
        with self._write_lock:
            self._enter()
            try:
                if self._full:
                    self._rotate_log_after_full()
                sink = _BatchSink(self._db.write_batch(transaction=True, sync=sync))
                with sink.batch:
                    apply_writes(writes, sink, self._counter_for_write)
                self._counter_cache.update(sink.counters)  # only once the batch is written
            except plyvel.Error as exc:
                raise self._failed("write", exc) from exc
            finally:
                self._exit()

    def iter_records(self, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(fingerprint, record) pairs in fingerprint order from `start`, as of the first next()."""
        layout.require_bytes("start", start)
        return self._scan(layout.RECORD, layout.RECORD + start)

    def write_bulk(self, bulk: BulkWrite, sync: bool = True) -> None:
        """Apply a BulkWrite as one atomic WriteBatch (see write() for `sync`)."""
        with self._write_lock:
            self._enter()
            try:
                if self._full:
                    self._rotate_log_after_full()
                sink = _BatchSink(self._db.write_batch(transaction=True, sync=sync))
                with sink.batch:
                    apply_bulk(bulk, sink, self._counter_for_write)
                self._counter_cache.update(sink.counters)
            except plyvel.Error as exc:
                raise self._failed("write_bulk", exc) from exc
            finally:
                self._exit()

    def iter_index(self, start: bytes = b"") -> Iterator[bytes]:
        """Every index entry in key order from `start`, as of the first next()."""
        layout.require_bytes("start", start)
        # Index rows are ~40 bytes, with empty values: 16 times the chunk of records is ~0.7 MB.
        rows = self._scan(layout.INDEX, layout.INDEX + start, SCAN_CHUNK_ROWS * 16)
        return (entry for entry, _ in rows)

    def counter(self, name: str) -> int:
        """A counter kept in the same batches as the records; 0 if never written."""
        self._enter()
        try:
            return self._counter(name)
        except plyvel.Error as exc:
            raise self._failed("counter", exc) from exc
        finally:
            self._exit()

    def get_extra(self, key: bytes) -> bytes | None:
        """A value written through RecordWrite.extra."""
        return self._get("get_extra", layout.extra_key(layout.require_bytes("key", key)))

    def iter_extra(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of extra keys under a prefix, in key order from `start`, as of the first next()."""
        layout.require_bytes("prefix", prefix)
        layout.require_bytes("start", start)
        return self._scan(layout.EXTRA + prefix, layout.EXTRA + max(prefix, start))

    def close(self) -> None:
        """Wait for calls in flight, then release the database (idempotent)."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            if self._in_flight == 0:
                self._idle.set()
        self._idle.wait()
        with self._state:
            self._db.close()
        log.info("event=store_closed path=%s", self.path)

    def _get(self, operation: str, key: bytes) -> bytes | None:
        self._enter()
        try:
            value: bytes | None = self._db.get(key, verify_checksums=True)
            return value
        except plyvel.Error as exc:
            raise self._failed(operation, exc) from exc
        finally:
            self._exit()

    def _scan(self, prefix: bytes, start: bytes,
              chunk_rows: int = SCAN_CHUNK_ROWS) -> Iterator[tuple[bytes, bytes]]:
        # A generator: the snapshot is taken at the first next(), so an iterator that is never
        # started holds nothing, and one dropped half-way releases its snapshot in `finally`.
        namespace = len(layout.RECORD)  # == len(layout.EXTRA): one namespace byte
        snapshot = self._snapshot()
        try:
            for key, value in self._snapshot_rows(snapshot, start, _prefix_end(prefix), chunk_rows):
                yield key[namespace:], value
        finally:
            self._release(snapshot)

    def _snapshot(self) -> plyvel.Snapshot:
        self._enter()
        try:
            return self._db.snapshot()
        finally:
            self._exit()

    def _snapshot_rows(self, snapshot: plyvel.Snapshot, start: bytes, stop: bytes | None,
                       chunk_rows: int) -> Iterator[tuple[bytes, bytes]]:
        """Raw (key, value) rows of a snapshot from start to stop, a fresh iterator per chunk."""
        include_start = True
        while True:
            self._enter()
            try:
                with snapshot.iterator(start=start, stop=stop, include_start=include_start,
                                       verify_checksums=True) as rows:
                    chunk = list(islice(rows, chunk_rows))
            except plyvel.Error as exc:
                raise self._failed("scan", exc) from exc
            finally:
                self._exit()
            yield from chunk
            if len(chunk) < chunk_rows:
                return
            start, include_start = chunk[-1][0], False

    def frozen(self) -> FrozenView:
        """The whole store as of now (one LevelDB snapshot), for a backup; close() releases it."""
        return FrozenView(self, self._snapshot())

    def write_raw(self, rows: Sequence[tuple[bytes, bytes]], sync: bool = False) -> None:
        """Put raw rows (full keys, namespace byte included) as one batch: a restore into a
        fresh store only (meshkp/bulk/restore.py checks every key's namespace first)."""
        with self._write_lock:
            self._enter()
            try:
                with self._db.write_batch(transaction=True, sync=sync) as batch:
                    for key, value in rows:
                        batch.put(key, value)
                self._counter_cache.clear()  # counters may have been among the rows
            except plyvel.Error as exc:
                raise self._failed("write_raw", exc) from exc
            finally:
                self._exit()

    def _release(self, snapshot: plyvel.Snapshot) -> None:
        with self._state:
            if self._closed:
                return  # the C++ DB is gone and took its snapshots with it
            self._in_flight += 1
        try:
            snapshot.close()
        finally:
            self._exit()

    def _counter(self, name: str) -> int:
        raw = self._db.get(layout.counter_key(name), verify_checksums=True)
        return 0 if raw is None else layout.decode_counter(raw)

    def _counter_for_write(self, name: str) -> int:
        value = self._counter_cache.get(name)
        return self._counter(name) if value is None else value

    def _enter(self) -> None:
        with self._state:
            if self._closed:
                raise StoreClosed(f"store at {self.path} is closed; open it again to use it")
            self._in_flight += 1

    def _exit(self) -> None:
        with self._state:
            self._in_flight -= 1
            if self._in_flight == 0 and self._closed:
                self._idle.set()

    def _failed(self, operation: str, exc: plyvel.Error) -> StoreError:
        if _NO_SPACE in str(exc):
            return self._disk_full(operation, exc)
        if isinstance(exc, plyvel.CorruptionError):
            log.error("event=store_corrupt op=%s path=%s error=%s", operation, self.path, exc)
            return integrity.corrupt(self.path, exc)
        log.error("event=store_failed op=%s path=%s error=%s", operation, self.path, exc)
        return StoreError(f"LevelDB {operation} failed at {self.path}: {exc}")

    def _disk_full(self, operation: str, exc: plyvel.Error) -> StoreFull:
        self.refused_full += 1
        if not self._full:
            self._full = True
            log.error("event=store_full op=%s path=%s error=%s action=free_space_on_the_data_dir_disk "
                      "(writes are refused until then; reads go on)", operation, self.path, exc)
        return StoreFull(
            f"the disk holding {self.path} is full, so nothing was stored: free space there (or grow "
            "the volume); this node keeps serving reads, and takes writes again once space returns"
        )

    def _rotate_log_after_full(self) -> None:
        """Before the first write after ENOSPC: flush the memtable and start a new LevelDB log.

        A log append that hit ENOSPC leaves LevelDB's log writer out of step with the file (it
        counts bytes that were never written), so every record appended to that log afterwards
        is unreadable on recovery: writes acknowledged after space returned would be lost at the
        next restart. The memtable holds exactly the acknowledged writes, so flushing it to a
        table (compact_range flushes it first, and switches to a new log) makes them durable
        without that log. Refused (StoreFull) while the disk cannot take the flush.
        """
        needed = int(self._db.get_property(b"leveldb.approximate-memory-usage") or 0) + FULL_MARGIN_BYTES
        if shutil.disk_usage(self.path).free < needed:
            raise self._disk_full("write", plyvel.IOError(f"{_NO_SPACE} (less than {needed} bytes free)"))
        before = _log_files(self.path)
        self._db.compact_range(start=b"\x00", stop=b"\x00")  # an empty range: only the memtable flush
        if _log_files(self.path) == before:
            raise self._disk_full("flush", plyvel.IOError(
                f"{_NO_SPACE}: LevelDB could not start a new log; restart the node once space is free"))
        self._full = False
        log.warning("event=store_space_recovered path=%s refused_writes=%d", self.path, self.refused_full)


class FrozenView:
    """One snapshot of a LevelDBStore: every raw row and point reads, as of its creation."""

    def __init__(self, store: LevelDBStore, snapshot: plyvel.Snapshot) -> None:
        self._store = store
        self._snapshot = snapshot
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        """The value of a raw key (namespace byte included) in the snapshot."""
        self._store._enter()
        try:
            value: bytes | None = self._snapshot.get(key, verify_checksums=True)
            return value
        except plyvel.Error as exc:
            raise self._store._failed("snapshot_get", exc) from exc
        finally:
            self._store._exit()

    def rows(self, chunk_rows: int = SCAN_CHUNK_ROWS) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the store in key order, keys with their namespace byte."""
        return self._store._snapshot_rows(self._snapshot, b"", None, chunk_rows)

    def close(self) -> None:
        """Release the snapshot (idempotent)."""
        if not self._closed:
            self._closed = True
            self._store._release(self._snapshot)


class _BatchSink:
    """Puts a batch's effects into a plyvel WriteBatch, in layout.py's keys."""

    def __init__(self, batch: plyvel.WriteBatch) -> None:
        self.batch = batch
        self.counters: dict[str, int] = {}

    def set_record(self, fingerprint: bytes, record: bytes | None) -> None:
        self._set(layout.record_key(fingerprint), record)

    def set_index(self, kind: IndexKind, term: bytes, fingerprint: bytes, present: bool) -> None:
        if present:
            self.batch.put(layout.index_key(kind, term, fingerprint), b"")
        else:
            self.batch.delete(layout.index_key(kind, term, fingerprint))

    def add_index_entries(self, entries: Sequence[bytes]) -> None:
        put, namespace = self.batch.put, layout.INDEX
        for entry in entries:
            put(namespace + entry, b"")

    def set_extra(self, key: bytes, value: bytes | None) -> None:
        self._set(layout.extra_key(key), value)

    def set_counter(self, name: str, value: int) -> None:
        self.counters[name] = value
        self._set(layout.counter_key(name), layout.encode_counter(value))

    def _set(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.batch.delete(key)
        else:
            self.batch.put(key, value)


def _log_files(path: Path) -> set[str]:
    return {p.name for p in path.glob("*.log")}


def _open(path: Path, options: LevelDBOptions) -> plyvel.DB:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return plyvel.DB(
            str(path),
            create_if_missing=True,
            paranoid_checks=True,  # a damaged log or manifest fails the open (integrity.py)
            write_buffer_size=options.write_buffer_bytes,
            lru_cache_size=options.block_cache_bytes,
            bloom_filter_bits=options.bloom_filter_bits,
            max_open_files=options.max_open_files,
        )
    except plyvel.CorruptionError as exc:
        raise integrity.corrupt(path, exc) from exc
    except (plyvel.Error, OSError) as exc:
        if _NO_SPACE in str(exc):
            raise StoreFull(f"cannot open store at {path}: its disk is full ({exc}); free space "
                            "there (or grow the volume) and start the node again") from exc
        hint = " (is another meshkp process using this data dir?)" if "lock" in str(exc) else ""
        raise StoreError(f"cannot open store at {path}: {exc}{hint}") from exc


def _check_schema(db: plyvel.DB, path: Path) -> None:
    raw = db.get(layout.SCHEMA_KEY)
    if raw is None:
        with db.iterator(include_value=False) as keys:
            empty = next(keys, None) is None
        if not empty:
            raise StoreError(
                f"{path} holds a LevelDB database without a meshkp schema version, so it is not "
                "a meshkp store; point --data-dir at a new or meshkp-created directory"
            )
        db.put(layout.SCHEMA_KEY, layout.encode_schema_version(layout.SCHEMA_VERSION), sync=True)
        return
    found = layout.decode_schema_version(raw)
    if found != layout.SCHEMA_VERSION:
        shown = f"v{found}" if found is not None else f"an unreadable version {raw[:16]!r}"
        raise StoreError(
            f"store at {path} has schema {shown}, but this meshkp reads "
            f"v{layout.SCHEMA_VERSION}: run the meshkp version that wrote it to `meshkp dump` "
            "the keys, then `meshkp load` them into a new data dir"
        )


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with prefix (None: no such key)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
