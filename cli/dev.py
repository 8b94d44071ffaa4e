"""`meshkp dev` (what `make run` starts): one node on 127.0.0.1:11371 with sample keys loaded.

The data directory is ./.meshkp-dev/node1 unless --data-dir says otherwise. The samples are
a handful of public test keys shipped in meshkp/samples/; they are uploaded through the
normal ingest path on every start (re-uploading is a no-op), so a newcomer can search and
fetch keys with gpg straight away.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from cli.serve import run_node, setup_logging
from meshkp.config import NodeConfig
from meshkp.errors import MeshkpError

DEV_DATA_DIR = Path(".meshkp-dev/node1")


def sample_keytexts() -> list[tuple[str, bytes]]:
    """(file name, armored keys) of the samples shipped with the package."""
    folder = resources.files("meshkp").joinpath("samples")
    return sorted(
        (entry.name, entry.read_bytes()) for entry in folder.iterdir() if entry.name.endswith(".asc")
    )


def _hint(url: str) -> str:
    hkp = url.replace("http://", "hkp://")
    return f"""
meshkp dev node is up: {url}  (Ctrl-C to stop)

Try it with GnuPG (a throw-away GNUPGHOME keeps your own keyring out of it):
  export GNUPGHOME=$(mktemp -d)
  gpg --keyserver {hkp} --search-keys alice@example.com
  gpg --keyserver {hkp} --recv-keys 0x10FE8CF1B483F7525039AA2A361BC1F023E0DCCA
  gpg --keyserver {hkp} --search-keys tails
  gpg --keyserver {hkp} --auto-key-locate clear,keyserver --locate-external-keys support@posteo.de
  gpg --quick-gen-key 'You <you@example.org>' && gpg --keyserver {hkp} --send-keys <fingerprint>

Or with curl:
  curl '{url}/pks/lookup?op=index&options=mr&search=example.com'
  curl '{url}/pks/lookup?op=stats&options=json'
"""


@click.command("dev")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEV_DATA_DIR, show_default=True)
@click.option("--http-port", type=int, default=11371, show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
def dev(data_dir: Path, http_port: int, log_level: str) -> None:
    """Run a local development node with sample keys (what `make run` starts)."""
    setup_logging(log_level)
    config = NodeConfig(data_dir=data_dir, host="127.0.0.1", http_port=http_port,
                        log_level=log_level.upper())

    def ready(node: object) -> None:
        node.spawn(_load_samples(node), name="load-samples")  # type: ignore[attr-defined]

    raise SystemExit(run_node(config, on_ready=ready))


async def _load_samples(node: object) -> None:
    service = node.service  # type: ignore[attr-defined]
    loaded = 0
    for name, keytext in sample_keytexts():
        try:
            report = await service.add(keytext)
        except MeshkpError as exc:
            click.echo(f"sample {name} could not be loaded: {exc}", err=True)
            continue
        loaded += sum(1 for o in report.outcomes if o.status.value != "rejected")
    click.echo(f"{loaded} sample keys present.")
    click.echo(_hint(node.url))  # type: ignore[attr-defined]
