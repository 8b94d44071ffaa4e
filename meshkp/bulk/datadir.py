"""Opening a node's data directory from an offline command (`meshkp load`, `meshkp dump`).

The store lives in DATA_DIR/keys (`store_path`, which the node opens too) and LevelDB lets one process
open it at a time. A running node holds that lock, so an offline command must say so
plainly instead of surfacing LevelDB's "IO error: lock ... Resource temporarily unavailable".
"""

from __future__ import annotations

from pathlib import Path

from meshkp.errors import StoreError, StoreInUse
from meshkp.store.leveldb import LevelDBStore

# The LevelDB directory inside a data directory, for the node and the offline commands alike.
KEYS_DIR = "keys"


def store_path(data_dir: Path) -> Path:
    return data_dir / KEYS_DIR


def open_store(data_dir: Path, purpose: str, online_alternative: str) -> LevelDBStore:
    """The data directory's store, or StoreInUse naming what to do while a node runs."""
    try:
        return LevelDBStore(store_path(data_dir))
    except StoreError as exc:
        if "lock" in str(exc).lower():
            raise StoreInUse(
                f"cannot {purpose}: {data_dir} is in use by a running meshkp node (its LevelDB "
                f"lock is held). Stop that node first, or {online_alternative}"
            ) from None
        raise
