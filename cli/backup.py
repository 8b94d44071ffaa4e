"""`meshkp backup` (from a running node, over HTTP) and `meshkp restore` (into a data dir, offline).

The file format and what a restore checks are in meshkp/bulk/backup_format.py and
meshkp/bulk/restore.py; docs/disaster-recovery.md says when to use which.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from cli.node_client import find_token, node_option, open_stream, token_options
from meshkp.errors import MeshkpError, StoreInUse

PARTIAL_SUFFIX = ".partial"
CHUNK_BYTES = 256 * 1024


class _Tee:
    """Reads from the node's reply and writes each byte read to the file: the backup is checked
    frame by frame as it arrives (BackupReader reads from this)."""

    def __init__(self, source: Any, sink: BinaryIO, on_bytes: Any) -> None:
        self._source, self._sink, self._on_bytes = source, sink, on_bytes

    def read(self, size: int) -> bytes:
        parts, wanted = [], size
        while wanted > 0:
            data = self._source.read(min(wanted, CHUNK_BYTES))
            if not data:
                break
            parts.append(data)
            wanted -= len(data)
        chunk = b"".join(parts)
        self._sink.write(chunk)
        self._on_bytes(len(chunk))
        return chunk


def _progress(show: bool, *columns: Any) -> Progress:
    return Progress(*columns, console=Console(stderr=True), disable=not show)


@click.command("backup")
@node_option
@token_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The backup file to write (written as FILE.partial, renamed once checked).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
def backup(node_url: str, token_file: Path | None, data_dir: Path | None, out: Path,
           progress: bool | None) -> None:
    """Copy a RUNNING node's store to --out: one consistent snapshot, with its policy version
    and Merkle root, checked as it arrives. `meshkp restore FILE --data-dir DIR` restores it."""
    from meshkp.bulk.backup_format import BackupReader

    token = find_token(token_file, data_dir)
    if out.exists():
        raise click.ClickException(f"{out} exists: choose a new --out file (a backup is never "
                                   "written over another)")
    show = Console(stderr=True).is_terminal if progress is None else progress
    bar = _progress(show, TextColumn("[bold]backup"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("records, {task.fields[mb]:.1f} MB"), TimeElapsedColumn())
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    response = open_stream(node_url, "/cluster/backup", token)
    records = int(response.headers.get("X-Meshkp-Records", "0") or 0)
    try:
        with response, partial.open("wb") as sink, bar:
            task = bar.add_task("backup", total=records or None, mb=0.0)
            downloaded = [0]

            def counted(n: int) -> None:
                downloaded[0] += n

            reader = BackupReader(_Tee(response, sink, counted))
            header = reader.read_header()
            done = 0
            for batch in reader.batches():
                done += sum(1 for key, _ in batch if key[:1] == b"r")
                bar.update(task, completed=done, mb=downloaded[0] / 1e6)
            sink.flush()
            os.fsync(sink.fileno())
    except MeshkpError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"the backup from {node_url} failed: {exc}") from None
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"the backup from {node_url} was cut: {exc}; run it again") from None
    partial.rename(out)
    click.echo(f"meshkp backup: {out}: {done} records ({reader.rows} rows, {downloaded[0]:,} bytes) "
               f"of node {header.node} at policy version {header.policy_version}, Merkle root "
               f"{header.merkle_root}")


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The data directory to restore into (new or empty, or --force).")
@click.option("--force", is_flag=True,
              help="Replace the key store and node identity of a non-empty --data-dir (its node "
                   "must be stopped; its cluster.key and admin.token stay).")
@click.option("--keep-control", is_flag=True,
              help="Keep the control plane's Raft state of the backup (default: dropped; the "
                   "node gets the log from the cluster it joins).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
def restore(file: Path, data_dir: Path, force: bool, keep_control: bool,
            progress: bool | None) -> None:
    """Restore a `meshkp backup` FILE into --data-dir (offline), as a node with a NEW identity.

    The file's integrity and the restored Merkle root are checked before the store is put in
    place. Start the node with --join to a member: it joins, and anti-entropy brings it the
    writes made since the backup.
    """
    from meshkp.bulk.restore import restore as run_restore

    show = Console(stderr=True).is_terminal if progress is None else progress
    bar = _progress(show, TextColumn("[bold]restore"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("records"), TimeElapsedColumn())
    task = bar.add_task("restore", total=None)

    def advance(header: Any, records: int) -> None:
        if header is not None:
            bar.update(task, total=header.records or None)
        bar.update(task, completed=records)

    try:
        with bar, file.open("rb") as source:
            summary = run_restore(source, data_dir, force=force, keep_control=keep_control,
                                  progress=advance)
    except StoreInUse as exc:
        click.echo(f"meshkp restore: {exc}", err=True)
        sys.exit(2)
    except (MeshkpError, OSError) as exc:
        click.echo(f"meshkp restore: {exc}", err=True)
        sys.exit(1)
    header = summary.header
    control = ("kept: the node joins its cluster as a new member and goes on from the kept log "
               "(alone it cannot lead: its new id is no voter of it)" if keep_control else
               f"dropped ({summary.control_rows_dropped} rows): the node gets the log from the "
               "cluster it joins")
    click.echo(f"meshkp restore: {summary.records} records ({summary.rows} rows) of node "
               f"{header.node}, taken {header.created} at policy version {header.policy_version}, "
               f"into {data_dir}\n  Merkle root {header.merkle_root} (checked)\n"
               f"  new node id {summary.node_id}; control plane {control}\n"
               "next: start the node with --join HOST:PORT of a member; it catches up by anti-entropy")
