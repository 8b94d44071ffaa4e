"""RaftStorage on a real LevelDB: what a Ready says is durable, and a restart gets it all back."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.membership import Configuration
from meshkp.control.raft.messages import AppendEntries, InstallSnapshot
from meshkp.control.raft.ready import Ready
from meshkp.control.raft.types import Compaction, Entry, EntryKind, HardState, Restored, Role, Snapshot
from meshkp.control.storage import RaftStorage, entry_key
from meshkp.errors import StoreError
from meshkp.store.layout import CONTROL_PREFIX
from meshkp.store.leveldb import LevelDBStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import RecordWrite
from tests.unit.control.helpers import core, fast, founding
from tests.unit.control.schedules import run_schedule
from tests.unit.control.simcluster import Disk


def _reopen(path: Path) -> tuple[LevelDBStore, RaftStorage]:
    store = LevelDBStore(path)
    return store, RaftStorage(store)


def test_a_restart_recovers_term_vote_log_and_snapshot(tmp_path: Path) -> None:
    store, storage = _reopen(tmp_path / "db")
    assert storage.is_empty()
    storage.initialize(bootstrap("a", [b"seed"]))
    c = core("a", storage.load(), config=fast(snapshot_threshold=5, snapshot_trailing_entries=2))

    def cycle() -> None:
        while c.has_ready():
            ready = c.ready()
            storage.save(ready)
            c.advance(ready)
            if c.snapshot_due():
                storage.save_compaction(c.compact(c.applied, f"state@{c.applied}".encode()))

    c.tick(0.0)
    cycle()
    for n in range(12):
        c.propose(0.1, f"cmd-{n}".encode())
        cycle()
    expected = (c.term, c.commit, [(e.index, e.term, e.data) for e in c.entries(1)], c.snapshot)
    store.close()

    store, storage = _reopen(tmp_path / "db")
    restored = storage.load()
    assert restored.hard_state == HardState(expected[0], "a", expected[1])
    assert restored.snapshot == expected[3] and restored.snapshot is not None
    assert [(e.index, e.term, e.data) for e in restored.entries] == expected[2]
    assert restored.base_index == restored.entries[0].index - 1
    again = core("a", restored, now=10.0)
    again.tick(10.0)
    assert again.role is Role.LEADER and again.term == expected[0] + 1
    assert not storage.is_empty()
    with pytest.raises(StoreError, match="bootstrapped only once"):
        storage.initialize(bootstrap("a"))
    store.close()


def test_a_conflicting_suffix_is_replaced_on_disk(tmp_path: Path) -> None:
    store, storage = _reopen(tmp_path / "db")
    base = founding(["a", "b", "c"])
    storage.initialize(Restored(HardState(2, "", 1), entries=(
        *base.entries, Entry(2, 2, EntryKind.COMMAND, b"x"), Entry(3, 2, EntryKind.COMMAND, b"y"))))
    f = core("b", storage.load())
    f.handle(0.0, "a", AppendEntries(3, 1, 1, (Entry(2, 3, EntryKind.NOOP),), 1, 0.0))
    for ready in drain_saving(f, storage):
        assert ready.entries
    store.close()
    store, storage = _reopen(tmp_path / "db")
    assert [(e.index, e.term) for e in storage.load().entries] == [(1, 1), (2, 3)]
    store.close()


def test_an_installed_snapshot_replaces_the_stored_log(tmp_path: Path) -> None:
    store, storage = _reopen(tmp_path / "db")
    storage.initialize(founding(["a", "b", "c"]))
    f = core("b", storage.load())
    snap = Snapshot(30, 4, Configuration(frozenset({"a", "b", "c"})), b"state")
    f.handle(0.0, "a", InstallSnapshot(4, snap, 0.0))
    f.handle(0.0, "a", AppendEntries(4, 30, 4, (Entry(31, 4, EntryKind.NOOP),), 31, 0.0))
    drain_saving(f, storage)
    store.close()
    store, storage = _reopen(tmp_path / "db")
    restored = storage.load()
    assert restored.snapshot == snap and (restored.base_index, restored.base_term) == (30, 4)
    assert [e.index for e in restored.entries] == [31]
    assert restored.hard_state.commit == 31
    store.close()


def drain_saving(c: object, storage: RaftStorage) -> list[Ready]:
    out = []
    while c.has_ready():  # type: ignore[attr-defined]
        ready = c.ready()  # type: ignore[attr-defined]
        storage.save(ready)
        c.advance(ready)  # type: ignore[attr-defined]
        out.append(ready)
    return out


def test_a_gap_or_garbage_in_the_stored_log_is_a_store_error() -> None:
    store = MemoryStore()
    storage = RaftStorage(store)
    storage.initialize(founding(["a"]))
    store.write([RecordWrite(bytes(20), None, extra=((entry_key(3), b"\x94\x03\x01\x00\xc4\x00"),))])
    with pytest.raises(StoreError, match="gap"):
        storage.load()
    garbage = ((entry_key(3), None), (CONTROL_PREFIX + b"h", b"\xc1"))
    store.write([RecordWrite(bytes(20), None, extra=garbage)])
    with pytest.raises(StoreError, match="corrupt"):
        storage.load()


class StoredDisk:
    """A simulated node's disk on RaftStorage over a MemoryStore, mirrored in a Disk.

    Every restart loads from the store, so the simulation exercises the adapter, and each load
    is checked against the mirror of what the Readies said."""

    def __init__(self, restored: Restored) -> None:
        self.storage = RaftStorage(MemoryStore())
        self.storage.initialize(restored)
        self.mirror = Disk.founded(restored)

    def save(self, ready: Ready) -> None:
        self.storage.save(ready)
        self.mirror.save(ready)

    def compact(self, compaction: Compaction) -> None:
        self.storage.save_compaction(compaction)
        self.mirror.compact(compaction)

    def restored(self) -> Restored:
        loaded = self.storage.load()
        assert loaded == self.mirror.restored()
        return loaded

    def last_index(self) -> int:
        return self.mirror.last_index()

    def term_at(self, index: int) -> int | None:
        return self.mirror.term_at(index)


@pytest.mark.parametrize("seed", [4, 8, 9, 11, 13, 14])  # schedules with at least two restarts
def test_simulated_crashes_restart_from_the_store(seed: int) -> None:
    cluster = run_schedule(seed, disk=StoredDisk)
    assert sum("restart" in line for line in cluster.schedule) >= 2
