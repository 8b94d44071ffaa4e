"""`meshkp serve`: run one node until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from cli.cluster_options import membership_options, with_membership_options
from cli.limit_option import apply_limit_overrides, limit_option
from cli.replication import replication_options, with_replication_options
from meshkp.config import LOG_LEVELS, NodeConfig
from meshkp.errors import ConfigError, MeshkpError

log = logging.getLogger("meshkp.cli")

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def setup_logging(level: str) -> None:
    """key=value lines on stderr, one per event."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)


def run_node(config: NodeConfig, on_ready: Callable[[object], None] | None = None) -> int:
    """Start a node, call on_ready(node), serve until a signal; the process exit code."""
    from meshkp.node.node import Node

    async def main() -> int:
        node = Node(config)
        from meshkp.node.membership_plugin import install as install_membership
        from meshkp.replication.plugin import install as install_replication

        install_membership(node)  # first: replication reads node.membership and node.keyring
        install_replication(node)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await node.start()
        except MeshkpError as exc:
            click.echo(f"meshkp: {exc}", err=True)
            return 2
        # One parseable line on stdout: test harnesses and scripts read the bound address here.
        click.echo(f"meshkp: listening on {node.url} node_id={node.node_id}")
        sys.stdout.flush()
        if on_ready is not None:
            on_ready(node)
        waiter = asyncio.ensure_future(stop.wait())
        stopped = asyncio.ensure_future(node.wait_stopped())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        await node.stop()
        return 0

    return asyncio.run(main())


@click.command("serve")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("./meshkp-data"), show_default=True,
              help="Directory for the key store and node identity (created if missing).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--http-port", type=int, default=11371, show_default=True,
              help="HKP port (0 picks a free port and prints it).")
@click.option("--node-id", default=None, help="Override the node id derived from node.key.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True)
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One key=value log line per HTTP request.")
@click.option("--upload-bytes", type=int, default=None,
              help="Limit of one POST /pks/add body (limits.upload_bytes).")
@limit_option
@replication_options
@membership_options
def serve(
    data_dir: Path, host: str, http_port: int, node_id: str | None, log_level: str,
    access_log: bool, upload_bytes: int | None, limit_overrides: tuple[str, ...],
) -> None:
    """Serve HKP on HOST:PORT from the key store in DATA_DIR."""
    setup_logging(log_level)
    config = NodeConfig(
        data_dir=data_dir, host=host, http_port=http_port, node_id=node_id,
        log_level=log_level.upper(), access_log=access_log,
    )
    if upload_bytes is not None:
        limits = dataclasses.replace(
            config.limits, upload_bytes=upload_bytes,
            key_bytes=min(config.limits.key_bytes, upload_bytes),
            packet_bytes=min(config.limits.packet_bytes, upload_bytes),
        )
        config = dataclasses.replace(config, limits=limits)
    config = dataclasses.replace(
        config, limits=apply_limit_overrides(config.limits, limit_overrides)
    )
    config = with_replication_options(config)
    config = with_membership_options(config)
    try:
        config.validate()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_node(config))
