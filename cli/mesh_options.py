"""`meshkp serve` options of membership, turned into the node's `membership` config section.

A node is in a mesh exactly when `--mesh` is given: it then opens the gossip port (UDP+TCP),
joins the `--join` seeds and the peers `--discovery` finds, and replicates with every live
member. Without `--mesh` it runs alone; the other options of this group then have nothing to
configure, and giving one is a usage error rather than a silent no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from meshkp.net.addr import DEFAULT_GOSSIP_PORT
from meshkp.node.membership import MembershipConfig
from meshkp.swim.config import SwimConfig

# SwimConfig profiles by name: lan (memberlist's LAN defaults), local (one host), test (fast).
PROFILES: dict[str, Callable[[], SwimConfig]] = {
    "lan": SwimConfig.lan, "local": SwimConfig.local, "test": SwimConfig.test,
}
_DEFAULTS = {"gossip_port": None, "join_specs": (), "discovery": "static", "cluster_name": "meshkp",
             "advertise_addr": None, "mdns_interfaces": (), "gossip_profile": "lan"}
_FLAGS = {"gossip_port": "--gossip-port", "join_specs": "--join", "discovery": "--discovery",
          "cluster_name": "--cluster-name", "advertise_addr": "--advertise-addr",
          "mdns_interfaces": "--mdns-interface", "gossip_profile": "--gossip-profile"}


def mesh_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --mesh and the membership options; the command gets `membership` (config or None).

    The command must also take `host`: gossip binds to the node's --host.
    """

    @click.option("--mesh", is_flag=True, default=False,
                  help="Run this node in a mesh: gossip membership and replication with its peers.")
    @click.option("--gossip-port", type=int, default=None,
                  help=f"Gossip UDP+TCP port (default {DEFAULT_GOSSIP_PORT}; 0 = any free port).")
    @click.option("--join", "join_specs", multiple=True, metavar="HOST:PORT|dns:NAME|srv:NAME",
                  help="Seed to join at start (repeatable); retried with backoff.")
    @click.option("--discovery", type=click.Choice(["static", "dns", "mdns"]), default="static",
                  show_default=True, help="How peers are found besides --join.")
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
        mesh = kwargs.pop("mesh")
        given = {name: kwargs.pop(name) for name in _DEFAULTS}
        if not mesh:
            stray = [_FLAGS[n] for n, value in given.items() if value != _DEFAULTS[n]]
            if stray:
                raise click.UsageError(
                    f"{', '.join(stray)} configure(s) the mesh, but this node runs alone: "
                    "add --mesh to run it in a mesh")
            return command(*args, membership=None, **kwargs)
        return command(*args, membership=membership_config(kwargs["host"], **given), **kwargs)

    return wrapper


def membership_config(
    host: str, *, gossip_port: int | None, join_specs: tuple[str, ...], discovery: str,
    cluster_name: str, advertise_addr: str | None, mdns_interfaces: tuple[str, ...],
    gossip_profile: str,
) -> MembershipConfig:
    """The membership section these option values describe, for a node serving on `host`."""
    mdns = tuple(mdns_interfaces) or None
    if mdns is None and host not in ("0.0.0.0", "::", ""):
        mdns = (host,)  # keep discovery on the interface we serve on (never leaks from lo)
    return MembershipConfig(
        bind_host=host, gossip_port=DEFAULT_GOSSIP_PORT if gossip_port is None else gossip_port,
        advertise_host=advertise_addr, join=tuple(join_specs), discovery=discovery,
        cluster_name=cluster_name, mdns_interfaces=mdns, swim=PROFILES[gossip_profile](),
    )
