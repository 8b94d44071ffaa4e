"""`meshkp serve` options of membership (added by the `membership_options` decorator).

Membership is on when any of --gossip-port, --join, --discovery dns|mdns or --cluster-key-file
is given; without them the node runs alone and opens no gossip socket.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from meshkp.config import NodeConfig
from meshkp.net.addr import DEFAULT_GOSSIP_PORT
from meshkp.node.membership_plugin import PROFILES, SECTION, GossipSettings

_META_KEY = "meshkp.membership"


def membership_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --gossip-port, --join, --discovery, --cluster-key-file and friends to a command."""

    @click.option("--gossip-port", type=int, default=None,
                  help=f"Gossip UDP+TCP port (default {DEFAULT_GOSSIP_PORT}; 0 = any free port).")
    @click.option("--join", "join_specs", multiple=True, metavar="HOST:PORT|dns:NAME|srv:NAME",
                  help="Seed to join at start (repeatable); retried with backoff.")
    @click.option("--discovery", type=click.Choice(["static", "dns", "mdns"]), default="static",
                  show_default=True, help="How peers are found besides --join.")
    @click.option("--cluster-key-file", type=click.Path(dir_okay=False, path_type=Path),
                  default=None,
                  help="Cluster keyring (meshkp keygen); default DATA_DIR/cluster.key.")
    @click.option("--cluster-name", default="meshkp", show_default=True,
                  help="Cluster name matched by mDNS discovery.")
    @click.option("--advertise-addr", default=None, metavar="IP",
                  help="Address peers use to reach this node (default: the bind address).")
    @click.option("--mdns-interface", "mdns_interfaces", multiple=True, metavar="IP",
                  help="Interface address mDNS may use (repeatable; default: --host).")
    @click.option("--gossip-profile", type=click.Choice(sorted(PROFILES)), default="lan",
                  show_default=True, help="Protocol timers: lan (memberlist), local, test.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        port = kwargs.pop("gossip_port")
        join = tuple(kwargs.pop("join_specs"))
        discovery = kwargs.pop("discovery")
        key_file = kwargs.pop("cluster_key_file")
        mdns = tuple(kwargs.pop("mdns_interfaces"))
        settings = GossipSettings(
            enabled=port is not None or bool(join) or discovery != "static"
            or key_file is not None,
            gossip_port=DEFAULT_GOSSIP_PORT if port is None else port,
            join=join, discovery=discovery, cluster_key_file=key_file,
            cluster_name=kwargs.pop("cluster_name"), advertise_host=kwargs.pop("advertise_addr"),
            mdns_interfaces=mdns or None, profile=kwargs.pop("gossip_profile"),
        )
        click.get_current_context().meta[_META_KEY] = settings
        return command(*args, **kwargs)

    return wrapper


def with_membership_options(config: NodeConfig) -> NodeConfig:
    """`config` with the membership section the current command's options describe."""
    settings = click.get_current_context().meta.get(_META_KEY)
    return config if settings is None else config.with_extension(SECTION, settings)
