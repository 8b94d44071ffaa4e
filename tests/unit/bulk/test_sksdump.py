"""Writing SKS/Hockeypuck dump files: names, rotation, deleted keys left out, no partial files."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.bulk.sksdump import DumpError, dump_file_name, dump_files, write_dump
from meshkp.bulk.split import key_spans
from tests.unit.bulk.helpers import record_of, store_with


def test_file_names_match_hockeypuck() -> None:
    assert dump_file_name(0) == "hkp-dump-0000.pgp"
    assert dump_file_name(12345) == "hkp-dump-12345.pgp"


def test_keys_are_split_across_files_in_store_order(tmp_path: Path) -> None:
    records = [record_of(i) for i in range(7)]
    store = store_with(records)
    summary = write_dump(store.iter_records(), tmp_path, keys_per_file=3)
    assert [p.name for p in summary.files] == [dump_file_name(n) for n in range(3)]
    assert dump_files(tmp_path) == summary.files
    assert summary.keys == 7
    written = b"".join(p.read_bytes() for p in summary.files)
    expected = b"".join(r.certificate.to_bytes() for r in sorted(records, key=lambda r: r.fingerprint))
    assert written == expected
    assert [len(key_spans(p.read_bytes(), 1 << 20)) for p in summary.files] == [3, 3, 1]
    assert not list(tmp_path.glob("*.partial"))


def test_deleted_keys_are_not_dumped(tmp_path: Path) -> None:
    live = record_of(1)
    gone = record_of(2).delete("node-a", hlc=5, reason="takedown", actor="admin")
    summary = write_dump(store_with([live, gone]).iter_records(), tmp_path)
    assert summary.keys == 1 and summary.skipped_deleted == 1
    assert summary.files[0].read_bytes() == live.certificate.to_bytes()


def test_empty_store_writes_no_file(tmp_path: Path) -> None:
    summary = write_dump(store_with([]).iter_records(), tmp_path / "out")
    assert summary.files == [] and (tmp_path / "out").is_dir()


def test_refuses_a_directory_that_already_holds_a_dump(tmp_path: Path) -> None:
    (tmp_path / "hkp-dump-0000.pgp").write_bytes(b"old")
    with pytest.raises(DumpError, match="already holds a dump"):
        write_dump(store_with([record_of(1)]).iter_records(), tmp_path)
    assert (tmp_path / "hkp-dump-0000.pgp").read_bytes() == b"old"


def test_an_interrupted_dump_leaves_no_partial_file(tmp_path: Path) -> None:
    def failing():
        yield from store_with([record_of(1), record_of(2)]).iter_records()
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_dump(failing(), tmp_path, keys_per_file=1)
    assert not list(tmp_path.glob("*.partial"))
    assert len(dump_files(tmp_path)) == 1  # the finished first file stays


def test_keys_per_file_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(DumpError):
        write_dump(iter(()), tmp_path, keys_per_file=0)
