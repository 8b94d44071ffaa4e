"""The parallel bulk loader behind `meshkp load`: files of keys in, batched WriteBatches out.

Pipeline, per file (keyring, armored file or SKS/Hockeypuck dump):
1. the parent frames the whole file by packet headers (meshkp.bulk.split): a file that
   cannot be framed raises LoadError before any key of it is stored;
2. runs of whole keys (a few hundred KB) go to worker processes (meshkp/keys/pool.py), which
   parse, normalise and verify them with the same code as POST /pks/add, and prepare each
   key's record and index terms (meshkp.bulk.worker);
3. the parent commits the results through the node's one commit path (meshkp.keys.commit,
   deciding with meshkp.keys.ingest as an upload does), thousands of keys per WriteBatch, in
   input order: records, index terms, counters and the Merkle tree of anti-entropy together,
   so a loaded node syncs its keys without a rebuild.
At most `max_in_flight` tasks are outstanding, so memory stays bounded on inputs of any size.
Intermediate batches are written without fsync (a crashed load is simply run again: loading
is idempotent); the last batch is synced before `load` returns.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from meshkp.bulk.sksdump import dump_files
from meshkp.bulk.source import InputError, InputKind, Piece, open_pieces
from meshkp.bulk.split import key_spans
from meshkp.bulk.worker import Item, WorkerItem, normalise_pieces, reason_category, received
from meshkp.errors import LimitExceeded, MeshkpError, OpenPGPError
from meshkp.keys.commit import LOADED, Committer
from meshkp.keys.ingest import KEYS_COUNTER, KeyOutcome, Refuse, Status, uploading
from meshkp.keys.pool import WorkerPool
from meshkp.keys.state import Prepared
from meshkp.limits import Limits
from meshkp.store.protocol import Store

log = logging.getLogger(__name__)


class LoadError(MeshkpError):
    """An input file cannot be loaded; none of its keys were stored (earlier files were)."""

    def __init__(self, message: str, summary: LoadSummary) -> None:
        super().__init__(message)
        self.summary = summary


# The summary's reason for keys the cluster policy's blacklist refused.
BLACKLISTED = "blacklisted by the cluster policy"

@dataclass(frozen=True, slots=True)
class LoadConfig:
    """Tuning of one load; the defaults keep both cores busy with ~100 MB of memory."""

    node_id: str
    limits: Limits = field(default_factory=Limits)
    # Worker processes. 0 parses in the loading process itself (small inputs, tests);
    # default one per core: the parent's share (merge, write) is small next to verification.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # One worker task: enough keys to amortise the IPC round trip (~100 µs), few enough that
    # the last task of a file does not leave one core idle for long.
    task_bytes: int = 256 * 1024
    task_keys: int = 200
    # Tasks outstanding at once. Bounds memory (task_bytes each, plus results) and keeps the
    # workers fed while the parent writes a batch.
    max_in_flight: int = 8
    # One WriteBatch: large batches amortise LevelDB's per-write cost; 4,000 keys of ~30 KB
    # (debian-keyring size) is ~120 MB at worst, so bytes bound it too.
    batch_keys: int = 4000
    batch_bytes: int = 32 * 1024 * 1024


@dataclass(slots=True)
class LoadSummary:
    """What a load did; `added` are new keys, `updated` merged into a stored copy."""

    files: int = 0
    input_bytes: int = 0
    keys: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason category -> one full reason
    keys_in_store: int = 0
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def count(self, outcome: KeyOutcome) -> None:
        self.keys += 1
        if outcome.status is Status.ADDED:
            self.added += 1
        elif outcome.status is Status.UPDATED:
            self.updated += 1
        elif outcome.status is Status.UNCHANGED:
            self.unchanged += 1
        else:
            # Refusals by the blacklist name the fingerprint: group them under one reason.
            category = BLACKLISTED if outcome.refused else reason_category(outcome.reason)
            self.rejected[category] += 1
            self.examples.setdefault(
                category, f"{outcome.fingerprint or '(unidentified)'}: {outcome.reason}"
            )
            log.info("event=key_rejected fp=%s reason=%r", outcome.fingerprint or "-",
                     outcome.reason)

    def to_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "input_bytes": self.input_bytes,
            "seconds": round(self.seconds, 3),
            "totals": {
                "keys": self.keys, "loaded": self.added, "merged": self.updated,
                "unchanged": self.unchanged, "rejected": self.rejected_total,
            },
            "rejected_by_reason": dict(self.rejected.most_common()),
            "rejected_examples": self.examples,
            "keys_in_store": self.keys_in_store,
        }


class Progress(Protocol):
    """Receives progress; the CLI draws a rich bar with it."""

    def begin(self, total_bytes: int) -> None: ...

    def file(self, path: Path, kind: InputKind) -> None: ...

    def advance(self, input_bytes: int, keys: int) -> None: ...


class _NoProgress:
    def begin(self, total_bytes: int) -> None:
        pass

    def file(self, path: Path, kind: InputKind) -> None:
        pass

    def advance(self, input_bytes: int, keys: int) -> None:
        pass


def resolve_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files to load: each file as given, each directory's dump files (hkp-dump-NNNN.pgp)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = dump_files(path)
            if not found:
                raise InputError(f"{path}: directory holds no hkp-dump-NNNN.pgp or sks-dump files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file")
    return files


@dataclass(slots=True)
class _Task:
    pieces: list[bytes]
    weight: int  # input bytes this task accounts for, for progress


class BulkLoader:
    """Loads files into a Store through `committer` (a new one under config.limits if None).

    `pool` is the worker pool to parse in (a node's, not closed here). Without one,
    `with BulkLoader(config) as loader:` makes and owns a pool of `config.workers`: enter the
    context (which starts the workers) before opening the store, so that the workers are
    forked from a process holding no LevelDB handle.
    """

    def __init__(self, config: LoadConfig, pool: WorkerPool | None = None,
                 committer: Committer | None = None) -> None:
        self.config = config
        self.committer = committer or Committer(config.limits)
        self._pool = pool
        self._owns_pool = False

    def __enter__(self) -> BulkLoader:
        if self._pool is None and self.config.workers > 0:
            self._pool = WorkerPool(self.config.workers, context="fork", idle_s=None)
            self._owns_pool = True
            self._pool.start()  # now, before the caller opens the store (see class doc)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._owns_pool and self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            self._owns_pool = False

    def load(self, files: Sequence[Path], store: Store, progress: Progress | None = None,
             refuse: Refuse | None = None) -> LoadSummary:
        """Load every file in order into store; LoadError at the first file that cannot be read.

        `refuse` names the fingerprints the cluster policy refuses (its blacklist), as
        `POST /pks/add` does; they are counted as rejected and not written.
        """
        progress = progress or _NoProgress()
        summary = LoadSummary()
        began = time.perf_counter()
        progress.begin(sum(p.stat().st_size for p in files))
        writer = _BatchWriter(store, self.config, self.committer, summary, refuse)
        pending: deque[tuple[Future[list[list[WorkerItem]]] | list[list[WorkerItem]], _Task]]
        pending = deque()
        failure: LoadError | None = None
        try:
            for task in self._tasks(files, progress, summary):
                pending.append((self._submit(task), task))
                while len(pending) >= self.config.max_in_flight:
                    self._collect(pending.popleft(), writer, progress)
        except (InputError, OpenPGPError, LimitExceeded) as exc:
            failure = LoadError(str(exc), summary)
        while pending:
            self._collect(pending.popleft(), writer, progress)
        writer.flush(final=True)
        summary.keys_in_store = store.counter(KEYS_COUNTER)
        summary.seconds = time.perf_counter() - began
        log.info("event=load_done files=%d keys=%d added=%d updated=%d unchanged=%d "
                 "rejected=%d seconds=%.2f", summary.files, summary.keys, summary.added,
                 summary.updated, summary.unchanged, summary.rejected_total, summary.seconds)
        if failure is not None:
            raise failure
        return summary

    def _submit(self, task: _Task) -> Future[list[list[WorkerItem]]] | list[list[WorkerItem]]:
        args = (task.pieces, self.committer.limits, self.config.node_id)
        if self._pool is None or not self._pool.enabled:
            return normalise_pieces(*args)
        return self._pool.submit(normalise_pieces, *args)

    def _collect(
        self,
        entry: tuple[Future[list[list[WorkerItem]]] | list[list[WorkerItem]], _Task],
        writer: _BatchWriter,
        progress: Progress,
    ) -> None:
        result, task = entry
        if isinstance(result, Future):
            try:
                result = result.result()
            except BrokenProcessPool:
                raise MeshkpError(
                    "a load worker process died (out of memory?); keys written so far are kept, "
                    "run the same meshkp load again to finish (loading is idempotent)"
                ) from None
        keys = 0
        for items in result:
            writer.add(items)
            keys += len(items)
        progress.advance(task.weight, keys)

    def _tasks(self, files: Sequence[Path], progress: Progress,
               summary: LoadSummary) -> Iterator[_Task]:
        """Worker tasks of every file, each file framed completely before its first task."""
        for path in files:
            with open_pieces(path) as (kind, pieces):
                progress.file(path, kind)
                framed = []
                for piece in pieces:
                    try:
                        framed.append((piece, key_spans(piece.data, self.config.limits.packet_bytes)))
                    except (OpenPGPError, LimitExceeded) as exc:
                        raise InputError(f"{path}: {exc}; nothing of this file was loaded") from None
                summary.files += 1
                summary.input_bytes += path.stat().st_size
                for piece, spans in framed:
                    yield from self._piece_tasks(piece, spans)

    def _piece_tasks(self, piece: Piece, spans: list[tuple[int, int]]) -> Iterator[_Task]:
        total = max(len(piece.data), 1)
        chunk: list[bytes] = []
        size = 0
        for start, end in spans:
            chunk.append(piece.data[start:end])
            size += end - start
            if size >= self.config.task_bytes or len(chunk) >= self.config.task_keys:
                yield _Task(chunk, piece.weight * size // total)
                chunk, size = [], 0
        if chunk:
            yield _Task(chunk, piece.weight * size // total)


class _BatchWriter:
    """Collects worker items and commits them into the store a WriteBatch at a time."""

    def __init__(self, store: Store, config: LoadConfig, committer: Committer,
                 summary: LoadSummary, refuse: Refuse | None = None) -> None:
        self.store = store
        self.refuse = refuse
        self.config = config
        self.committer = committer
        self.summary = summary
        self.items: list[Item] = []
        self.bytes = 0
        self.unsynced = False

    def add(self, items: list[WorkerItem]) -> None:
        for item in received(items):
            if isinstance(item, Prepared):
                self.bytes += len(item.encoded)
            self.items.append(item)
        if len(self.items) >= self.config.batch_keys or self.bytes >= self.config.batch_bytes:
            self.flush(final=False)

    def flush(self, final: bool) -> None:
        """Commit the collected items; the final flush is fsync'ed."""
        items, self.items, self.bytes = self.items, [], 0
        decide = uploading(items, self.config.node_id, self.refuse)
        result = self.committer.apply(self.store, decide, LOADED, sync=final)
        if result.writes:
            self.unsynced = not final
        elif final and self.unsynced:
            self.store.write([], sync=True)  # make the earlier, unsynced batches durable
            self.unsynced = False
        for outcome in result.outcomes:
            self.summary.count(outcome)
