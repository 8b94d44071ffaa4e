"""`meshkp serve` options of membership, and the config field each one sets.

A node is in a mesh exactly when `--mesh` is given, or `enabled = true` in the [cluster] table
of its config file (MESHKP_CLUSTER_ENABLED=true); `--no-mesh` overrides the file. It then opens
the gossip port (UDP+TCP), joins the `--join` seeds and the peers `--discovery` finds, and
replicates with every live member. Without a mesh it runs alone; the other options of this
group then have nothing to configure, and giving one is a usage error rather than a silent
no-op (meshkp/node/settings/build.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.flag_settings import FlagTarget
from meshkp.net.addr import DEFAULT_GOSSIP_PORT
from meshkp.node.settings.build import PROFILES

MESH_FLAGS = {
    "mesh": FlagTarget("--mesh", "mesh"),
    "gossip_port": FlagTarget("--gossip-port", "membership.gossip_port"),
    "join_specs": FlagTarget("--join", "membership.join", tuple),
    "discovery": FlagTarget("--discovery", "membership.discovery"),
    "cluster_name": FlagTarget("--cluster-name", "membership.cluster_name"),
    "advertise_addr": FlagTarget("--advertise-addr", "membership.advertise_host"),
    "mdns_interfaces": FlagTarget("--mdns-interface", "membership.mdns_interfaces", tuple),
    "gossip_profile": FlagTarget("--gossip-profile", "membership.profile"),
    "control_profile": FlagTarget("--control-profile", "consensus.profile"),
}


def mesh_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --mesh/--no-mesh and the membership options (their fields: MESH_FLAGS)."""
    options = (
        click.option("--mesh/--no-mesh", default=False,
                     help="Run this node in a mesh: gossip membership and replication with its "
                          "peers (--no-mesh overrides enabled = true of a config file)."),
        click.option("--gossip-port", type=int, default=None,
                     help=f"Gossip UDP+TCP port (default {DEFAULT_GOSSIP_PORT}; 0 = any free port)."),
        click.option("--join", "join_specs", multiple=True, metavar="HOST:PORT|dns:NAME|srv:NAME",
                     help="Seed to join at start (repeatable); retried with backoff."),
        click.option("--discovery", type=click.Choice(["static", "dns", "mdns"]),
                     default="static", show_default=True, help="How peers are found besides --join."),
        click.option("--cluster-name", default="meshkp", show_default=True,
                     help="Cluster name matched by mDNS discovery."),
        click.option("--advertise-addr", default=None, metavar="IP",
                     help="Address peers use to reach this node (default: the bind address)."),
        click.option("--mdns-interface", "mdns_interfaces", multiple=True, metavar="IP",
                     help="Interface address mDNS may use (repeatable; default: --host)."),
        click.option("--gossip-profile", type=click.Choice(sorted(PROFILES)), default="lan",
                     show_default=True, help="Protocol timers: lan (memberlist), local, test."),
        click.option("--control-profile", type=click.Choice(["lan", "local"]), default="lan",
                     show_default=True,
                     help="Control-plane Raft timers: lan (election 1-2 s), local (0.5-1 s)."),
    )
    for option in reversed(options):
        command = option(command)
    return command
