"""`meshkp recover` on a real LevelDB data dir: --dry-run prints what a recovery writes, writes nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.recover import recover
from meshkp.bulk.datadir import store_path
from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, MembershipChange
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored
from meshkp.control.storage import RaftStorage
from meshkp.store.leveldb import LevelDBStore


def _three_voters(data_dir: Path) -> Restored:
    """A stopped node's control store: founded by n1 with cluster id c1, then n2 and n3 voters."""
    store = LevelDBStore(store_path(data_dir))
    try:
        storage = RaftStorage(store)
        storage.initialize(bootstrap("n1", cluster_id="c1"))
        storage.load()
        voters = Configuration(frozenset({"n1", "n2", "n3"}), cluster="c1")
        change = ConfigChange(MembershipChange(ChangeOp.PROMOTE, "n3"), voters, "autopilot", "n1")
        storage.append_forced(Entry(2, 2, EntryKind.CONFIG, change.encode()), HardState(2, "n1", 2))
        return storage.load()
    finally:
        store.close()


def _stored(data_dir: Path) -> Restored:
    store = LevelDBStore(store_path(data_dir))
    try:
        return RaftStorage(store).load()
    finally:
        store.close()


def test_dry_run_prints_the_configuration_term_and_audit_entry_and_writes_nothing(tmp_path: Path) -> None:
    before = _three_voters(tmp_path)
    runner = CliRunner()
    dry = runner.invoke(recover, ["--data-dir", str(tmp_path), "--node-id", "n2", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _stored(tmp_path) == before  # not one key changed
    assert "would recover node n2: the new configuration is entry 3 at term 102" in dry.output
    assert "after:  voters n2; learners n1, n3" in dry.output
    assert "generation: c1/0 -> c1/1" in dry.output
    assert "hard state: term 102, vote n2, commit 3" in dry.output
    assert ("audit entry: seq 3 token 102.3 op membership actor 'meshkp recover' node n2: forced "
            "recovery") in dry.output
    assert "nothing was written" in dry.output

    done = runner.invoke(recover, ["--data-dir", str(tmp_path), "--node-id", "n2"])
    assert done.exit_code == 0, done.output
    # The real run writes exactly what the dry run said.
    assert done.output.splitlines()[1:5] == dry.output.splitlines()[1:5]
    after = _stored(tmp_path)
    assert after.hard_state == HardState(102, "n2", 3) and len(after.entries) == 3
    assert ConfigChange.decode(after.entries[-1].data).configuration.generation is not None


def test_rejoin_forgets_the_log_keeps_term_and_vote_and_refuses_the_only_voter(tmp_path: Path) -> None:
    before = _three_voters(tmp_path)
    runner = CliRunner()
    dry = runner.invoke(recover, ["--data-dir", str(tmp_path), "--node-id", "n2", "--rejoin", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would forget the control log of node n2: entries 1..2" in dry.output
    assert "it was of generation c1/0: voters n1, n2, n3" in dry.output
    assert _stored(tmp_path) == before
    done = runner.invoke(recover, ["--data-dir", str(tmp_path), "--node-id", "n2", "--rejoin"])
    assert done.exit_code == 0, done.output
    assert "kept: term 2 and vote n1" in done.output and "--join a member" in done.output
    assert _stored(tmp_path) == Restored(HardState(2, "n1", 0))

    again = runner.invoke(recover, ["--data-dir", str(tmp_path), "--node-id", "n2", "--rejoin"])
    assert again.exit_code == 1 and "nothing to forget" in again.output
    both = runner.invoke(recover, ["--data-dir", str(tmp_path), "--rejoin", "--voter", "n3"])
    assert both.exit_code == 1 and "--rejoin takes no --voter" in both.output
    solo = tmp_path / "solo"
    store = LevelDBStore(store_path(solo))
    try:
        RaftStorage(store).initialize(bootstrap("n1", cluster_id="c2"))
    finally:
        store.close()
    only = runner.invoke(recover, ["--data-dir", str(solo), "--node-id", "n1", "--rejoin"])
    assert only.exit_code == 1 and "the only voter" in only.output, only.output
