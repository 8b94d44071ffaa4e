"""`meshkp dump`: write the live keys of a data dir as SKS/Hockeypuck dump files."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meshkp.errors import MeshkpError, StoreInUse


@click.command("dump")
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=Path("./meshkp-data"), show_default=True,
              help="The node's data directory (the node must be stopped).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for hkp-dump-NNNN.pgp files (created; must hold no dump yet).")
@click.option("--keys-per-file", type=click.IntRange(min=1), default=15000, show_default=True,
              help="Keys per file, as hockeypuck-dump -count.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when stderr is a terminal).")
def dump(data_dir: Path, out_dir: Path, keys_per_file: int, progress: bool | None) -> None:
    """Write every live key of DATA_DIR to OUT as hkp-dump-NNNN.pgp files.

    The files are binary OpenPGP keys back to back, the format SKS and Hockeypuck dumps
    use: `meshkp load OUT`, `hockeypuck-load OUT/*.pgp` and `sks build` read them.
    Deleted keys are left out.
    """
    from meshkp.bulk.datadir import open_store
    from meshkp.bulk.sksdump import write_dump
    from meshkp.keys.ingest import KEYS_COUNTER

    err = Console(stderr=True)
    try:
        store = open_store(data_dir, "dump keys",
                           "fetch single keys with GET /pks/lookup?op=get")
    except StoreInUse as exc:
        click.echo(f"meshkp dump: {exc}", err=True)
        sys.exit(2)
    except MeshkpError as exc:
        click.echo(f"meshkp dump: {exc}", err=True)
        sys.exit(1)
    show = err.is_terminal if progress is None else progress
    bar = Progress(TextColumn("[bold]dumping"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, disable=not show)
    try:
        with bar:
            task = bar.add_task("dump", total=store.counter(KEYS_COUNTER) or None)
            summary = write_dump(store.iter_records(), out_dir, keys_per_file,
                                 progress=lambda n: bar.advance(task, n))
    except (MeshkpError, OSError) as exc:
        click.echo(f"meshkp dump: {exc}", err=True)
        sys.exit(1)
    finally:
        store.close()
    click.echo(f"meshkp dump: {summary.keys} keys in {len(summary.files)} file(s), "
               f"{summary.bytes:,} bytes, in {out_dir} "
               f"({summary.skipped_deleted} deleted keys left out)")
