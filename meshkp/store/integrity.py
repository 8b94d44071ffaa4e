"""Damaged LevelDB files are found, never served: a verified scan at open, and what to tell the operator.

LevelDB checks a block's CRC only when asked (`verify_checksums`; plyvel's default is off), so a
flipped bit in a table is returned as data: a node would serve a corrupted key and replicate it.
The store therefore reads with checksums verified (leveldb.py), opens with `paranoid_checks`, and
here scans every row once at open, so a damaged or truncated file stops the node at start with
the remedy rather than surfacing at some later read. The scan reads each table block once
(~1 s per 500 MB on a laptop disk); above `FULL_CHECK_MAX_BYTES` of tables it is skipped and
the verified reads alone catch the damage, when a damaged block is first read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import plyvel

from meshkp.errors import StoreCorrupt

log = logging.getLogger(__name__)

# Table bytes above which the start-up scan is skipped: it would delay every start by minutes on
# an SKS-size store (~12 GB), where a replica restores faster from its peers than from a scan.
FULL_CHECK_MAX_BYTES = 2 * 1024**3


def remedy(path: Path) -> str:
    """What an operator does about a damaged store at `path`."""
    return (f"stop the node, move {path} away (keep it for inspection), and start the node again: "
            "it bootstraps every key from its peers; a node without peers needs its backup "
            "(`meshkp restore FILE --data-dir DIR`, or `meshkp load` of a dump)")


def corrupt(path: Path, detail: object) -> StoreCorrupt:
    return StoreCorrupt(f"the store at {path} is damaged ({detail}): {remedy(path)}")


def table_bytes(path: Path) -> int:
    return sum(p.stat().st_size for pattern in ("*.ldb", "*.sst") for p in path.glob(pattern))


def check_tables(db: plyvel.DB, path: Path) -> int:
    """Read every row with checksums verified; the rows read, or StoreCorrupt naming the damage.

    Skipped (returns -1) above FULL_CHECK_MAX_BYTES of tables, see the module doc.
    """
    size = table_bytes(path)
    if size > FULL_CHECK_MAX_BYTES:
        log.warning("event=store_check_skipped path=%s table_bytes=%d limit=%d", path, size,
                    FULL_CHECK_MAX_BYTES)
        return -1
    rows = 0
    try:
        with db.iterator(verify_checksums=True, fill_cache=False) as it:
            for _ in it:
                rows += 1
    except plyvel.Error as exc:
        raise corrupt(path, exc) from exc
    return rows
