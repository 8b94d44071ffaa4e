"""The backup file format and restore on real LevelDB: round trip, damage, refusals, control drop."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from meshkp.bulk import backup_format
from meshkp.bulk.backup_format import BackupHeader, BackupReader, BackupWriter
from meshkp.bulk.datadir import store_path
from meshkp.bulk.restore import restore
from meshkp.errors import BackupError, StoreInUse
from meshkp.keys.merkle_index import MerkleIndex
from meshkp.net.identity import IDENTITY_FILE, load_or_create_identity
from meshkp.store import layout
from meshkp.store.leveldb import LevelDBStore
from tests.integration.replication_mesh import build_store


def _backup(store: LevelDBStore, root: str | None = None) -> bytes:
    view = store.frozen()
    try:
        header = BackupHeader(node="n0", created="2026-01-01T00:00:00Z", policy_version=3,
                              merkle_root=root or MerkleIndex().root_hex(store), records=50)
        writer = BackupWriter(header)
        parts = [writer.start(), writer.add(list(view.rows())), writer.finish()]
    finally:
        view.close()
    return b"".join(parts)


@pytest.fixture
def source(tmp_path: Path) -> LevelDBStore:
    build_store(tmp_path / "src", 50)
    store = LevelDBStore(store_path(tmp_path / "src"))
    # A control-plane row, as the Raft storage writes them (dropped by default).
    store.write_raw([(layout.extra_key(layout.CONTROL_PREFIX + b"h"), b"\x80")], sync=True)
    yield store
    store.close()


def test_round_trip_keeps_every_row_but_the_control_state(source: LevelDBStore, tmp_path: Path) -> None:
    data = _backup(source)
    summary = restore(io.BytesIO(data), tmp_path / "dst")
    assert summary.records == 50 and summary.control_rows_dropped == 1
    restored = LevelDBStore(store_path(tmp_path / "dst"))
    try:
        assert MerkleIndex().root_hex(restored) == MerkleIndex().root_hex(source)
        assert list(restored.iter_records()) == list(source.iter_records())
        assert list(restored.iter_index()) == list(source.iter_index())
        assert restored.get_extra(layout.CONTROL_PREFIX + b"h") is None
    finally:
        restored.close()
    kept = restore(io.BytesIO(data), tmp_path / "kept", keep_control=True)
    assert kept.control_rows_dropped == 0


def test_the_restored_node_gets_a_new_identity(source: LevelDBStore, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    target.mkdir()
    old = load_or_create_identity(target).node_id
    (target / "admin.token").write_text("t" * 32)
    summary = restore(io.BytesIO(_backup(source)), target, force=True)
    assert summary.node_id != old
    assert load_or_create_identity(target).node_id == summary.node_id
    assert (target / "admin.token").exists() and (target / IDENTITY_FILE).exists()


def test_a_non_empty_dir_needs_force(source: LevelDBStore, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(BackupError, match="--force"):
        restore(io.BytesIO(_backup(source)), target)


def test_restore_under_a_running_node_is_refused(source: LevelDBStore, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    live = LevelDBStore(store_path(target))  # holds the LOCK as a running node does
    try:
        with pytest.raises(StoreInUse):
            restore(io.BytesIO(_backup(source)), target, force=True)
    finally:
        live.close()


@pytest.mark.parametrize("cut", [5, 40, -30, -1])
def test_a_truncated_file_restores_nothing(source: LevelDBStore, tmp_path: Path, cut: int) -> None:
    data = _backup(source)
    with pytest.raises(BackupError, match="truncated|corrupt"):
        restore(io.BytesIO(data[:cut]), tmp_path / "dst")
    assert not store_path(tmp_path / "dst").exists()


def test_one_flipped_bit_fails_the_trailer(source: LevelDBStore, tmp_path: Path) -> None:
    data = bytearray(_backup(source))
    data[len(data) // 2] ^= 0x04
    with pytest.raises(BackupError, match="corrupt"):
        restore(io.BytesIO(bytes(data)), tmp_path / "dst")
    assert not store_path(tmp_path / "dst").exists()


def test_a_root_that_does_not_match_the_records_is_refused(source: LevelDBStore, tmp_path: Path) -> None:
    data = _backup(source, root="00" * 32)
    with pytest.raises(BackupError, match="Merkle root"):
        restore(io.BytesIO(data), tmp_path / "dst")
    assert not store_path(tmp_path / "dst").exists()


def test_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not a meshkp backup"):
        restore(io.BytesIO(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), tmp_path / "dst")


def test_rows_are_cut_into_bounded_frames(source: LevelDBStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = 16 * 1024
    monkeypatch.setattr(backup_format, "FRAME_TARGET_BYTES", target)
    reader = BackupReader(io.BytesIO(_backup(source)))
    reader.read_header()
    batches = list(reader.batches())
    biggest_row = max(len(k) + len(v) for batch in batches for k, v in batch)
    sizes = [sum(len(k) + len(v) for k, v in batch) for batch in batches]
    assert len(sizes) > 5 and max(sizes) < target + biggest_row


def test_a_snapshot_does_not_see_later_writes(source: LevelDBStore) -> None:
    view = source.frozen()
    try:
        before = MerkleIndex().root_hex(source)
        source.write_raw([(layout.extra_key(b"zz-later"), b"1")], sync=True)
        keys = [key for key, _ in view.rows()]
        assert layout.extra_key(b"zz-later") not in keys
        assert MerkleIndex().root_hex(source) == before
    finally:
        view.close()
