"""`meshkp recover`: force a new control-plane configuration onto a stopped node (offline).

For a cluster that lost a majority of its voters for good, as etcd's --force-new-cluster or
Consul's peers.json: meshkp/control/raft/recovery.py says what is written and why it is safe
against the old voters; docs/control-plane.md "Recovering from the loss of a majority" says
when to use it and its risks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.logs import setup_logging
from meshkp.errors import InvalidCommand, MeshkpError, StoreInUse

if TYPE_CHECKING:
    from meshkp.control.raft.membership import Configuration
    from meshkp.control.raft.types import Restored


@click.command("recover")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The data directory of the STOPPED node to recover.")
@click.option("--voter", "voters", multiple=True, metavar="NODE_ID",
              help="A voter of the new configuration (repeatable); the node itself always is. "
                   "Default: the node alone.")
@click.option("--node-id", default=None,
              help="This node's id, as given to `meshkp serve` (default: derived from node.key).")
@click.option("--rejoin", is_flag=True,
              help="Instead: forget this node's control log (keeping its term, vote and keys), so "
                   "that a node whose log forked from its leader's catches up from it again.")
@click.option("--dry-run", is_flag=True,
              help="Print what would be written (configuration, term, audit entry); change nothing.")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def recover(data_dir: Path, voters: tuple[str, ...], node_id: str | None, rejoin: bool,
            dry_run: bool, log_level: str) -> None:
    """Force a new voter set after a majority of voters is lost for good (offline).

    The node keeps its log and policy; on its next start it elects itself (with the other
    --voter nodes) at a higher term. Every other member of the old configuration becomes a
    learner. Remove the lost voters afterwards with `meshkp members remove ID`.

    With --rejoin, on a node whose /cluster/consensus shows `forked_at` (its committed log
    conflicts with its leader's): forget its control log, keep its term, vote and key data;
    started again, it catches up from the leader.
    """
    setup_logging(log_level)
    try:
        if rejoin and voters:
            raise InvalidCommand("--rejoin takes no --voter: the node rejoins the cluster its leader has")
        message = _run(data_dir, voters, node_id, rejoin, dry_run)
    except StoreInUse as exc:
        click.echo(f"meshkp recover: {exc}", err=True)
        sys.exit(2)
    except MeshkpError as exc:
        click.echo(f"meshkp recover: {exc}", err=True)
        sys.exit(1)
    click.echo(message)


def _run(data_dir: Path, voters: tuple[str, ...], node_id: str | None, rejoin: bool,
         dry_run: bool) -> str:
    # Imported here: `meshkp --help` should not pay for LevelDB and the control plane.
    from meshkp.bulk.datadir import open_store, store_path
    from meshkp.control.policy.apply import apply_entry
    from meshkp.control.raft.recovery import check_rejoin, force_configuration
    from meshkp.control.storage import RaftStorage
    from meshkp.control.stored_policy import replayed
    from meshkp.net.identity import IDENTITY_FILE, load_or_create_identity

    if not store_path(data_dir).is_dir():
        raise InvalidCommand(f"{data_dir} holds no key store ({store_path(data_dir)} is missing): "
                             "pass the --data-dir of a node that ran `meshkp serve`")
    if node_id is None and not (data_dir / IDENTITY_FILE).exists():
        raise InvalidCommand(f"{data_dir} has no {IDENTITY_FILE}; pass --node-id as given to meshkp serve")
    # An id given is taken as it is (it must be a member); else the one node.key derives.
    node = node_id or load_or_create_identity(data_dir).node_id
    store = open_store(data_dir, "recover the control plane",
                       "stop it first: recovery rewrites the control store offline")
    try:
        storage = RaftStorage(store)
        if storage.is_empty():
            raise InvalidCommand(f"{data_dir} has no control store (this node never ran a control "
                                 "plane, or never joined one): there is nothing to recover")
        restored = storage.load()
        if rejoin:
            forgotten = check_rejoin(restored, node)
            if not dry_run:
                storage.reset_for_rejoin(restored.hard_state)
            return _rejoined(node, restored, forgotten, dry_run)
        recovery = force_configuration(restored, node, voters, hlc=int(time.time() * 1000) << 16)
        if not dry_run:
            storage.append_forced(recovery.entry, recovery.hard_state)
    finally:
        store.close()
    before, after = recovery.before, recovery.after
    entry, hard = recovery.entry, recovery.hard_state
    # At start the node applies its whole log, then this entry: the audit entry it will add.
    audit = apply_entry(replayed(restored, entry.index - 1), entry).audit
    lines = [
        f"{'would recover' if dry_run else 'recovered'} node {node}: the new configuration is "
        f"entry {entry.index} at term {entry.term}",
        f"  before: voters {_names(before.voters)}; learners {_names(before.learners)}",
        f"  after:  voters {_names(after.voters)}; learners {_names(after.learners)}",
        f"  generation: {before.generation} -> {after.generation} (members still at the old one "
        "are refused)",
        f"  hard state: term {hard.term}, vote {hard.vote}, commit {hard.commit}",
    ]
    if audit is not None:
        lines.append(f"  audit entry: seq {audit.seq} token {audit.token} op {audit.op} actor "
                     f"{audit.actor!r} node {audit.node}: {audit.detail}")
    if dry_run:
        return "\n".join([*lines, "dry run: nothing was written; run again without --dry-run "
                                  "to write it."])
    return "\n".join([
        *lines,
        "next: start this node; it elects itself and keeps its policy. Then remove each voter lost",
        "for good (`meshkp members remove ID`), so that it is refused if it ever comes back.",
        "Never recover a second survivor of the same cluster: it would found a second cluster.",
    ])


def _rejoined(node: str, restored: Restored, forgotten: Configuration, dry_run: bool) -> str:
    last = restored.base_index + len(restored.entries)
    hard = restored.hard_state
    lines = [
        f"{'would forget' if dry_run else 'forgot'} the control log of node {node}: entries "
        f"{restored.base_index + 1}..{last}"
        + (f" and the snapshot at {restored.snapshot.index}" if restored.snapshot else ""),
        f"  it was of generation {forgotten.generation}: voters {_names(forgotten.voters)}; "
        f"learners {_names(forgotten.learners)}",
        f"  kept: term {hard.term} and vote {hard.vote or '-'} (so it never votes twice in a term), "
        "and every key",
    ]
    if dry_run:
        return "\n".join([*lines, "dry run: nothing was written; run again without --dry-run to "
                                  "write it."])
    return "\n".join([
        *lines,
        "next: start this node with --join a member. Its leader sends it the log or a snapshot; it",
        "has caught up when GET /cluster/consensus shows its leader and `forked_at` null.",
    ])


def _names(ids: frozenset[str]) -> str:
    return ", ".join(sorted(ids)) or "-"
