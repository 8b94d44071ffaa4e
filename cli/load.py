"""`meshkp load`: bulk-load keyrings, armored files and SKS/Hockeypuck dumps into a data dir."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from cli.limit_option import apply_limit_overrides, limit_option
from cli.logs import setup_logging
from meshkp.bulk.loader import LoadSummary
from meshkp.bulk.source import InputKind
from meshkp.errors import MeshkpError, StoreInUse
from meshkp.limits import Limits

if TYPE_CHECKING:
    from meshkp.bulk.loader import BulkLoader
    from meshkp.keys.ingest import Refuse
    from meshkp.store.protocol import Store

log = logging.getLogger("meshkp.cli")


class _RichProgress:
    """A byte-based bar over all input files, with the key count and current file."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[keys]:,} keys"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.keys = 0

    def begin(self, total_bytes: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("loading", total=total_bytes, keys=0)

    def file(self, path: Path, kind: InputKind) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=f"{path.name} ({kind.value})")

    def advance(self, input_bytes: int, keys: int) -> None:
        self.keys += keys
        if self.task is not None:
            self.bar.update(self.task, advance=input_bytes, keys=self.keys)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.update(self.task, description="done")
        self.bar.stop()


def summary_table(summary: LoadSummary) -> Table:
    rate = summary.keys / summary.seconds if summary.seconds else 0.0
    table = Table(
        title="meshkp load",
        caption=f"{summary.files} file(s), {summary.input_bytes:,} bytes, "
        f"{summary.seconds:.1f} s, {rate:,.0f} keys/s",
    )
    table.add_column("outcome")
    table.add_column("keys", justify="right")
    table.add_row("loaded (new)", f"{summary.added:,}")
    table.add_row("merged (new packets)", f"{summary.updated:,}")
    table.add_row("unchanged", f"{summary.unchanged:,}")
    table.add_row("rejected", f"{summary.rejected_total:,}")
    for reason, count in summary.rejected.most_common():
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    table.add_row("keys in store", f"{summary.keys_in_store:,}", style="bold")
    return table


@click.command("load")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("./meshkp-data"), show_default=True,
              help="The node's data directory (the node must be stopped).")
@click.option("--node-id", default=None,
              help="Node id for the version vectors; as given to `meshkp serve`, if any.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Parser processes (default: one per core; 0: parse in this process).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary as JSON to this file.")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="INFO logs every rejected key with its reason.")
@limit_option
def load(files: tuple[Path, ...], data_dir: Path, node_id: str | None, workers: int | None,
         progress: bool | None, summary_json: Path | None, log_level: str,
         limit_overrides: tuple[str, ...]) -> None:
    """Load FILES (binary keyrings, armored files, SKS dump *.pgp files or dump directories).

    The format of each file is detected from its content. Keys are normalised and
    their self-signatures verified exactly as POST /pks/add does; the summary counts
    keys loaded, merged into a stored copy, unchanged, and rejected by reason.
    """
    setup_logging(log_level)
    err = Console(stderr=True)
    limits = apply_limit_overrides(Limits(), limit_overrides)
    try:
        summary = _run(files, data_dir, node_id, workers, progress, err, limits)
    except StoreInUse as exc:
        click.echo(f"meshkp load: {exc}", err=True)
        sys.exit(2)
    except MeshkpError as exc:
        partial = getattr(exc, "summary", None)
        if partial is not None:
            Console().print(summary_table(partial))
            _write_json(summary_json, partial, error=str(exc))
        click.echo(f"meshkp load: {exc}", err=True)
        sys.exit(1)
    Console().print(summary_table(summary))
    _write_json(summary_json, summary)


def _run(files: tuple[Path, ...], data_dir: Path, node_id: str | None, workers: int | None,
         progress: bool | None, err: Console, limits: Limits) -> LoadSummary:
    # Imported here: `meshkp --help` should not pay for LevelDB, cryptography and aiohttp.
    from meshkp.bulk.datadir import open_store
    from meshkp.bulk.loader import BulkLoader, LoadConfig, resolve_inputs
    from meshkp.net.identity import load_or_create_identity

    inputs = resolve_inputs(files)
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = load_or_create_identity(data_dir, node_id)
    config = LoadConfig(node_id=identity.node_id, limits=limits)
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    show = err.is_terminal if progress is None else progress
    bar = _RichProgress(err) if show else None
    # The loader commits through the one commit path, which keeps the Merkle tree of
    # anti-entropy in the same batches as the records: a loaded node syncs without a rebuild.
    with BulkLoader(config) as loader:
        store = open_store(data_dir, "load keys",
                           "send the keys to it with POST /pks/add "
                           "(curl --data-urlencode keytext@FILE http://HOST:11371/pks/add)")
        try:
            refuse = _follow_stored_policy(store, loader, limits, err)
            return loader.load(inputs, store, bar, refuse)
        finally:
            if bar is not None:
                bar.stop()
            store.close()


def _follow_stored_policy(store: Store, loader: BulkLoader, limits: Limits, err: Console) -> Refuse | None:
    """Hold the load to the cluster policy the node had applied, when it has a control store:
    its limits replace the command line's (as they do for `meshkp serve`), and its blacklist
    refuses those fingerprints. None (no refusals) for a node that never ran a control plane."""
    from meshkp.control.stored_policy import stored_policy
    from meshkp.keys.policy import DataPolicy

    policy = stored_policy(store)
    if policy is None or policy.version == 0:
        return None
    if policy.limits != limits and limits != Limits():  # the operator gave --limit options
        differ = [f"{f.name}={getattr(limits, f.name)}(policy:{getattr(policy.limits, f.name)})"
                  for f in dataclasses.fields(limits)
                  if getattr(limits, f.name) != getattr(policy.limits, f.name)]
        err.print(f"meshkp load: the cluster policy (version {policy.version}) sets the limits; "
                  f"these options are overridden: {', '.join(differ)}. Change limits for the "
                  "cluster with `meshkp policy set`.", highlight=False)
    loader.committer.limits = policy.limits
    blacklist = {fp: entry.reason for fp, entry in policy.blacklist.items()}
    log.info("event=load_policy version=%d blacklisted=%d", policy.version, len(blacklist))
    return DataPolicy(policy.version, blacklist).refusal


def _write_json(path: Path | None, summary: LoadSummary, error: str | None = None) -> None:
    if path is None:
        return
    data = summary.to_json()
    if error is not None:
        data["error"] = error
    path.write_text(json.dumps(data, indent=2) + "\n")
