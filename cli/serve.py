"""`meshkp serve`: turn the config file, MESHKP_* variables and options into a NodeConfig and
run `Node(config)` until a signal.

Precedence, highest first: options typed on the command line, MESHKP_* environment variables,
the `--config` TOML file, the defaults of the config dataclasses (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from cli.flag_settings import FlagTarget, flag_layer, limit_layer
from cli.limit_option import limit_option
from cli.logs import setup_logging
from cli.mesh_options import MESH_FLAGS, mesh_options
from cli.replication_options import REPLICATION_FLAGS, replication_options
from meshkp.errors import InvalidSettings, MeshkpError
from meshkp.http.access_log import FORMATS as ACCESS_LOG_FORMATS
from meshkp.node.config import CONSISTENCY_LEVELS, LOG_LEVELS, NodeConfig
from meshkp.node.node import Node
from meshkp.node.settings.build import UPLOAD_CAP, Resolved, resolve
from meshkp.node.settings.environment import read_environment
from meshkp.node.settings.layers import merge
from meshkp.node.settings.toml_file import read_config_file

log = logging.getLogger(__name__)

CONFIG_ENV = "MESHKP_CONFIG"  # the --config file, for containers

SERVE_FLAGS = {
    "data_dir": FlagTarget("--data-dir", "node.data_dir"),
    "host": FlagTarget("--host", "node.host"),
    "http_port": FlagTarget("--http-port", "node.http_port"),
    "node_id": FlagTarget("--node-id", "node.node_id"),
    "log_level": FlagTarget("--log-level", "node.log_level", str.upper),
    "access_log": FlagTarget("--access-log", "node.access_log"),
    "access_log_file": FlagTarget("--access-log-file", "node.access_log_file"),
    "access_log_format": FlagTarget("--access-log-format", "node.access_log_format"),
    "upload_bytes": FlagTarget("--upload-bytes", UPLOAD_CAP),
    "cluster_key_file": FlagTarget("--cluster-key-file", "node.cluster_key_file"),
    "default_consistency": FlagTarget("--consistency", "node.default_consistency"),
    "agent_check_port": FlagTarget("--agent-check-port", "node.agent_check_port"),
    "drain_grace": FlagTarget("--drain-grace", "node.drain_grace_s"),
    "trusted_proxies": FlagTarget("--trusted-proxy", "node.trusted_proxies", tuple),
    "tls_cert": FlagTarget("--tls-cert", "node.tls_cert"),
    "tls_key": FlagTarget("--tls-key", "node.tls_key"),
    "admin_listen": FlagTarget("--admin-listen", "node.admin_listen"),
}


def run_node(config: NodeConfig, on_ready: Callable[[Node], None] | None = None) -> int:
    """Start a node, call on_ready(node), serve until a signal; the process exit code."""

    async def main() -> int:
        node = Node(config)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # logrotate's convention (the access log), and cluster key rotation without a restart.
        loop.add_signal_handler(signal.SIGHUP, node.reload)
        try:
            await node.start()
        except MeshkpError as exc:
            click.echo(f"meshkp: {exc}", err=True)
            return 2
        # One parseable line on stdout: test harnesses and scripts read the bound address here.
        if node.admin_url is not None:
            click.echo(f"meshkp: admin API on {node.admin_url}")
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


def serve_settings(
    ctx: click.Context, config_file: Path | None, environ: Mapping[str, str]
) -> Resolved:
    """The node config of a `meshkp serve` invocation: defaults < file < environment < flags.

    Raises click.UsageError listing every problem, each with where it came from.
    """
    file_layer, problems = read_config_file(config_file) if config_file else ({}, [])
    env_layer, env_problems = read_environment(environ)
    limits_layer, limit_problems = limit_layer(ctx.params["limit_overrides"])
    flags = flag_layer(ctx, {**SERVE_FLAGS, **MESH_FLAGS, **REPLICATION_FLAGS})
    try:
        return resolve(merge((file_layer, env_layer, limits_layer, flags)),
                       [*problems, *env_problems, *limit_problems])
    except InvalidSettings as exc:
        raise click.UsageError("\n".join(exc.errors)) from None


@click.command("serve")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, envvar=CONFIG_ENV, show_envvar=True,
              help="TOML config file (docs/configuration.md); MESHKP_* variables and the "
                   "options given here override it.")
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
              help="One log line per HTTP request (written by a thread, off the request path).")
@click.option("--access-log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the access log to FILE (reopened on SIGHUP); default stderr.")
@click.option("--access-log-format", type=click.Choice(ACCESS_LOG_FORMATS), default="kv",
              show_default=True, help="kv (key=value), common or combined (NCSA log formats).")
@click.option("--upload-bytes", type=int, default=None,
              help="Limit of one POST /pks/add body (limits.upload_bytes).")
@click.option("--cluster-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Cluster keyring (meshkp keygen), the same file on every node; "
                   "default DATA_DIR/cluster.key with --mesh (created if missing).")
@click.option("--consistency", "default_consistency", type=click.Choice(CONSISTENCY_LEVELS),
              default="one", show_default=True, help="Default x-consistency of POST /pks/add.")
@click.option("--agent-check-port", type=click.IntRange(0, 65535), default=0, metavar="PORT",
              help="Answer HAProxy's agent check on this TCP port (0: off, the default).")
@click.option("--drain-grace", type=click.FloatRange(0), default=10.0, show_default=True,
              metavar="SECONDS", help="Seconds from a drain to /cluster/health answering 503.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
              help="A proxy or load balancer whose X-Forwarded-For is believed; its requests "
                   "are exempt from rate limits (repeatable; hkp.trusted_proxies).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM certificate chain: serve HKPS (TLS) on the HKP port (with --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM private key of --tls-cert.")
@click.option("--admin-listen", default=None, metavar="[HOST:]PORT",
              help="Serve /cluster/* and /metrics on a separate listener (host default "
                   "127.0.0.1), and no longer on the HKP port.")
@limit_option
@replication_options
@mesh_options
@click.pass_context
def serve(ctx: click.Context, /, config_file: Path | None, **_options: Any) -> None:
    """Serve HKP on HOST:PORT from the key store in DATA_DIR."""
    resolved = serve_settings(ctx, config_file, os.environ)
    config = resolved.config
    setup_logging(config.log_level)
    _log_settings(config_file, resolved)
    sys.exit(run_node(config))


def _log_settings(config_file: Path | None, resolved: Resolved) -> None:
    if config_file is not None:
        log.info("event=config_loaded file=%s mesh=%s", config_file, resolved.config.in_mesh)
    if resolved.unused:
        log.warning("event=config_mesh_settings_unused settings=%s hint=set_enabled_true_in_cluster",
                    ",".join(o.label.lstrip("[").replace("] ", ".") for o in resolved.unused))
    if resolved.consensus:
        control = resolved.config.control
        log.info("event=config_consensus settings=%s heartbeat_interval=%g election_timeout=%g-%g",
                 ",".join(sorted(resolved.consensus)), control.heartbeat_interval,
                 control.election_timeout_min, control.election_timeout_max)
