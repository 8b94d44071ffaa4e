"""Damaged LevelDB files: the store refuses to open with the remedy, or refuses the damaged read.

Regression: a table with flipped bytes used to be served as data (LevelDB verifies block CRCs
only when asked), and a truncated table escaped as a raw plyvel traceback at start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.errors import StoreCorrupt
from meshkp.store import integrity
from meshkp.store.leveldb import LevelDBStore
from tests.unit.store.helpers import fpr, put

RECORDS = 400


def store_in_a_table(path: Path) -> Path:
    """A store whose records sit in one table file (a reopen flushes the log); that file."""
    store = LevelDBStore(path)
    store.write([put(fpr(n), bytes([n % 251]) * 900) for n in range(RECORDS)])
    store.close()
    LevelDBStore(path).close()
    tables = sorted(path.glob("*.ldb"))
    assert tables, "the reopen should have written the log into a table"
    return max(tables, key=lambda p: p.stat().st_size)


def flip(table: Path) -> None:
    data = bytearray(table.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    table.write_bytes(bytes(data))


def test_flipped_bytes_in_a_table_stop_the_open_with_the_remedy(tmp_path: Path) -> None:
    flip(store_in_a_table(tmp_path / "db"))
    with pytest.raises(StoreCorrupt) as caught:
        LevelDBStore(tmp_path / "db")
    assert "damaged" in str(caught.value) and "move" in str(caught.value) and "peers" in str(caught.value)


def test_a_truncated_table_stops_the_open_with_the_remedy(tmp_path: Path) -> None:
    table = store_in_a_table(tmp_path / "db")
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    with pytest.raises(StoreCorrupt, match="damaged"):
        LevelDBStore(tmp_path / "db")


def test_a_damaged_block_is_never_returned_when_the_start_scan_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    flip(store_in_a_table(tmp_path / "db"))
    monkeypatch.setattr(integrity, "FULL_CHECK_MAX_BYTES", 0)  # as on a store too big to scan
    store = LevelDBStore(tmp_path / "db")
    try:
        served, refused = 0, 0
        for n in range(RECORDS):
            try:
                value = store.get(fpr(n))
            except StoreCorrupt:
                refused += 1
                continue
            assert value == bytes([n % 251]) * 900, f"record {n} came back altered"
            served += 1
        assert refused > 0 and served > 0
    finally:
        store.close()


def test_an_intact_store_is_checked_row_by_row_at_open(tmp_path: Path) -> None:
    store_in_a_table(tmp_path / "db")
    store = LevelDBStore(tmp_path / "db")
    try:
        assert store.get(fpr(7)) == bytes([7]) * 900
    finally:
        store.close()
