"""Restoring a backup (backup_format.py) into a data directory, checked before it is used.

The rows go into a fresh LevelDB beside the real one (DATA_DIR/keys.restoring); the store
takes the place of DATA_DIR/keys only once the trailer proved the file whole AND the Merkle root
recomputed from the restored records equals the root the backup names. A failed restore leaves
the data directory as it was.

The restored node gets a new identity (a new DATA_DIR/node.key, so a new node id): a node's
version-vector counter for its own id must never go back, and the copy holds an older state
than the node it was taken from, which may still run. The control plane's Raft state (its
log, vote and term) belongs to the node that wrote it, so it is dropped unless asked: the node
then joins the cluster as a new member and receives the log from the leader, or, alone, founds
a new control plane (re-apply the policy the header keeps). Everything else (records, indexes,
counters, Merkle tree, conflicts, the delete audit outbox) is kept as it is.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crdt.merkle import MemoryMerkleStorage, MerkleTree, build_nodes
from meshkp.bulk.backup_format import BackupHeader, BackupReader
from meshkp.bulk.datadir import open_store, store_path
from meshkp.errors import BackupError
from meshkp.keys.merkle_index import MerkleIndex, state_hash
from meshkp.net.identity import IDENTITY_FILE, load_or_create_identity
from meshkp.store import layout
from meshkp.store.leveldb import LevelDBStore

log = logging.getLogger(__name__)

RESTORING_SUFFIX = ".restoring"
# Files of the node that wrote the data dir that a restored node must not inherit: its
# identity and its SWIM incarnation (meshkp/membership/incarnation.py).
NODE_FILES = (IDENTITY_FILE, "incarnation")
# Rows per write batch: ~2 KB each, so ~8 MB per batch.
BATCH_ROWS = 4096
_CONTROL_KEY = layout.extra_key(layout.CONTROL_PREFIX)


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    """What a restore wrote."""

    header: BackupHeader
    rows: int
    records: int
    control_rows_dropped: int
    node_id: str  # the restored node's new id


def check_target(data_dir: Path, force: bool) -> None:
    """BackupError unless data_dir is missing, empty, or force is given (and no node runs in it)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a directory: pass --data-dir DIR of a new or empty directory")
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return
    if not force:
        raise BackupError(f"{data_dir} is not empty: restore into a new directory, or pass --force "
                          f"to replace its key store and node identity (its cluster.key and "
                          "admin.token stay)")
    if store_path(data_dir).is_dir():
        # Fails with StoreInUse (exit 2) while a node runs on it: never restore under a live node.
        open_store(data_dir, "restore into it", "stop it first").close()


def restore(source: BinaryIO, data_dir: Path, *, force: bool = False, keep_control: bool = False,
            progress: Callable[[BackupHeader | None, int], None] | None = None) -> RestoreSummary:
    """Restore the backup read from `source` into data_dir; see the module doc.

    `progress(header, records)` is called with the header once, then with records restored so far.
    """
    check_target(data_dir, force)
    reader = BackupReader(source)
    header = reader.read_header()
    if progress is not None:
        progress(header, 0)
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = data_dir / (store_path(data_dir).name + RESTORING_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)  # a restore interrupted earlier
    try:
        records, dropped = _fill(reader, LevelDBStore(staging), header, keep_control, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(store_path(data_dir), ignore_errors=True)
    staging.rename(store_path(data_dir))
    for name in NODE_FILES:
        (data_dir / name).unlink(missing_ok=True)
    node_id = load_or_create_identity(data_dir).node_id
    log.info("event=backup_restored data_dir=%s rows=%d records=%d root=%s from_node=%s "
             "node_id=%s control_kept=%s", data_dir, reader.rows, records, header.merkle_root[:16],
             header.node, node_id, keep_control)
    return RestoreSummary(header, reader.rows, records, dropped, node_id)


def _fill(reader: BackupReader, store: LevelDBStore, header: BackupHeader, keep_control: bool,
          progress: Callable[[BackupHeader | None, int], None] | None) -> tuple[int, int]:
    """Write every row into store, then check its Merkle tree; (records, control rows dropped)."""
    records = dropped = 0
    leaves: list[tuple[bytes, bytes]] = []
    pending: list[tuple[bytes, bytes]] = []
    try:
        for batch in reader.batches():
            for key, value in batch:
                if not keep_control and key.startswith(_CONTROL_KEY):
                    dropped += 1
                    continue
                if key[:1] == layout.RECORD:
                    leaves.append((key[1:], state_hash(value)))
                    records += 1
                pending.append((key, value))
            if len(pending) >= BATCH_ROWS:
                store.write_raw(pending)
                pending = []
                if progress is not None:
                    progress(None, records)
        store.write_raw(pending, sync=True)  # one fsync of the log makes every batch durable
        if progress is not None:
            progress(None, records)
        merkle = MerkleIndex()
        recomputed = MerkleTree(MemoryMerkleStorage(build_nodes(leaves, merkle.config)),
                                merkle.config).root().hex()
        stored = merkle.root_hex(store)
    finally:
        store.close()
    if recomputed != header.merkle_root or stored != header.merkle_root:
        raise BackupError(f"the restored records hash to Merkle root {recomputed[:16]}... (stored "
                          f"tree {stored[:16]}...), the backup names {header.merkle_root[:16]}...: "
                          "the backup is inconsistent; nothing was restored, take a new backup")
    return records, dropped
