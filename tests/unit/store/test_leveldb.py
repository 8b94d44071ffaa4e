"""LevelDBStore on disk: persistence, schema version, locking, closing under concurrent reads."""

from __future__ import annotations

import threading
from pathlib import Path

import plyvel
import pytest

from meshkp.errors import StoreClosed, StoreError
from meshkp.store import layout
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.protocol import IndexKind
from tests.unit.store.helpers import fpr, put

W = IndexKind.KEYWORD


def test_data_survives_reopen_and_the_layout_is_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "db"  # parents are created
    store = LevelDBStore(path)
    store.write([put(fpr(1), b"rec", new=[(W, b"alice")], counters={"keys": 1},
                     extra=[(b"merkle/root", b"h")])])
    store.close()

    raw = plyvel.DB(str(path))
    try:
        assert raw.get(layout.SCHEMA_KEY) == b"1"
        assert raw.get(b"r" + fpr(1)) == b"rec"
        assert raw.get(b"i" + b"w" + b"\x00\x05" + b"alice" + fpr(1)) == b""
        assert raw.get(b"c" + b"keys") == (1).to_bytes(8, "big")
        assert raw.get(b"x" + b"merkle/root") == b"h"
    finally:
        raw.close()

    again = LevelDBStore(path)
    try:
        assert again.get(fpr(1)) == b"rec"
        assert again.lookup(W, b"alice", 5) == [fpr(1)]
        assert again.counter("keys") == 1
    finally:
        again.close()


def test_other_schema_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    LevelDBStore(tmp_path / "db").close()
    raw = plyvel.DB(str(tmp_path / "db"))
    raw.put(layout.SCHEMA_KEY, b"2")
    raw.close()
    with pytest.raises(StoreError, match=r"schema v2.*reads v1.*meshkp dump"):
        LevelDBStore(tmp_path / "db")
    plyvel.DB(str(tmp_path / "db")).close()  # the refused open released the LOCK


def test_a_foreign_leveldb_is_not_taken_over(tmp_path: Path) -> None:
    raw = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    raw.put(b"someone else's", b"data")
    raw.close()
    with pytest.raises(StoreError, match="not a meshkp store"):
        LevelDBStore(tmp_path / "db")
    raw = plyvel.DB(str(tmp_path / "db"))
    assert raw.get(layout.SCHEMA_KEY) is None  # nothing was written into it
    raw.close()


def test_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    first = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StoreError, match="another meshkp process"):
            LevelDBStore(tmp_path / "db")
    finally:
        first.close()


def test_close_waits_for_reads_in_flight_and_never_crashes(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    store.write([put(fpr(n), b"x" * 2000, new=[(W, b"common")]) for n in range(500)])
    errors: list[BaseException] = []
    reads = [0]
    started = threading.Barrier(5)

    def reader() -> None:
        started.wait()
        try:
            for n in range(100_000):
                store.get(fpr(n % 500))
                store.lookup(W, b"common", 50)
                for _ in store.iter_records():
                    pass
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001 - collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    store.close()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(errors) == 4 and all(isinstance(e, StoreClosed) for e in errors), errors


def test_close_does_not_free_the_database_under_a_call_in_flight(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    store._enter()  # what every call does around its LevelDB work
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(timeout=0.3)
    assert closer.is_alive(), "close() returned while a call was still inside LevelDB"
    with pytest.raises(StoreClosed):
        store.get(fpr(1))  # new calls are refused while close() waits
    store._exit()
    closer.join(timeout=5)
    assert not closer.is_alive()
