"""`meshkp serve` options of replication, and the config field each one sets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.flag_settings import FlagTarget
from meshkp.replication.config import ReplicationConfig

_DEFAULTS = ReplicationConfig()

REPLICATION_FLAGS = {
    "replication_port": FlagTarget("--replication-port", "replication.port"),
    "sync_interval": FlagTarget("--sync-interval", "replication.sync_interval_s"),
    "replication_peers": FlagTarget("--replication-peer", "replication.static_peers", tuple),
    "fanout": FlagTarget("--fanout", "replication.fanout"),
    "verify_peer_records": FlagTarget("--verify-peer-records", "replication.verify_peer_records"),
}


def replication_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --replication-port, --sync-interval, --replication-peer, --fanout and
    --verify-peer-records (their fields: REPLICATION_FLAGS)."""
    options = (
        click.option("--replication-port", type=int, default=0, show_default=True,
                     help="Replication TCP port (0: gossip port + 1 in a mesh, else any)."),
        click.option("--sync-interval", type=float, default=_DEFAULTS.sync_interval_s,
                     show_default=True, help="Seconds between anti-entropy rounds."),
        click.option("--replication-peer", "replication_peers", multiple=True, metavar="HOST:PORT",
                     help="Replication address of a peer to sync with besides membership "
                          "(repeatable; needs --cluster-key-file)."),
        click.option("--fanout", type=int, default=_DEFAULTS.fanout, show_default=True,
                     help="Peers each change is pushed to."),
        click.option("--verify-peer-records", type=click.Choice(["all", "push", "none"]),
                     default=_DEFAULTS.verify_peer_records, show_default=True,
                     help="Which records from peers get their self-signatures re-verified."),
    )
    for option in reversed(options):
        command = option(command)
    return command
