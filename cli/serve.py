"""`meshkp serve`: turn the options into a NodeConfig and run `Node(config)` until a signal."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from cli.limit_option import apply_limit_overrides, limit_option
from cli.logs import setup_logging
from cli.mesh_options import mesh_options
from cli.replication_options import replication_options
from meshkp.errors import ConfigError, MeshkpError
from meshkp.limits import Limits
from meshkp.node.config import CONSISTENCY_LEVELS, LOG_LEVELS, NodeConfig
from meshkp.node.membership import MembershipConfig
from meshkp.node.node import Node
from meshkp.replication.config import ReplicationConfig

def run_node(config: NodeConfig, on_ready: Callable[[Node], None] | None = None) -> int:
    """Start a node, call on_ready(node), serve until a signal; the process exit code."""

    async def main() -> int:
        node = Node(config)
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


def upload_limits(limits: Limits, upload_bytes: int | None) -> Limits:
    """`limits` with --upload-bytes applied: a key or packet can be no larger than an upload."""
    if upload_bytes is None:
        return limits
    return dataclasses.replace(
        limits, upload_bytes=upload_bytes, key_bytes=min(limits.key_bytes, upload_bytes),
        packet_bytes=min(limits.packet_bytes, upload_bytes),
    )


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
@click.option("--cluster-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Cluster keyring (meshkp keygen), the same file on every node; "
                   "default DATA_DIR/cluster.key with --mesh (created if missing).")
@click.option("--consistency", "default_consistency", type=click.Choice(CONSISTENCY_LEVELS),
              default="one", show_default=True, help="Default x-consistency of POST /pks/add.")
@limit_option
@replication_options
@mesh_options
def serve(
    data_dir: Path, host: str, http_port: int, node_id: str | None, log_level: str,
    access_log: bool, upload_bytes: int | None, cluster_key_file: Path | None,
    default_consistency: str, limit_overrides: tuple[str, ...],
    replication: ReplicationConfig, membership: MembershipConfig | None,
) -> None:
    """Serve HKP on HOST:PORT from the key store in DATA_DIR."""
    setup_logging(log_level)
    limits = apply_limit_overrides(upload_limits(Limits(), upload_bytes), limit_overrides)
    config = NodeConfig(
        data_dir=data_dir, host=host, http_port=http_port, node_id=node_id,
        log_level=log_level.upper(), access_log=access_log, limits=limits,
        default_consistency=default_consistency, cluster_key_file=cluster_key_file,
        membership=membership, replication=replication,
    )
    try:
        config.validate()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_node(config))
