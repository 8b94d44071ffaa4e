"""`meshkp serve` options of replication, turned into the node's `replication` config section."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from meshkp.replication.config import ReplicationConfig

_DEFAULTS = ReplicationConfig()


def replication_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --sync-port, --sync-interval, --sync-peer, --fanout, --verify-peer-records; the
    command gets `replication` (a ReplicationConfig)."""

    @click.option("--sync-port", type=int, default=0, show_default=True,
                  help="Replication TCP port (0: gossip port + 1 in a mesh, else any).")
    @click.option("--sync-interval", type=float, default=_DEFAULTS.sync_interval_s,
                  show_default=True, help="Seconds between anti-entropy rounds.")
    @click.option("--sync-peer", "sync_peers", multiple=True, metavar="HOST:PORT",
                  help="Replication address of a peer to sync with besides membership "
                       "(repeatable; needs --cluster-key-file).")
    @click.option("--fanout", type=int, default=_DEFAULTS.fanout, show_default=True,
                  help="Peers each change is pushed to.")
    @click.option("--verify-peer-records", type=click.Choice(["all", "push", "none"]),
                  default=_DEFAULTS.verify_peer_records, show_default=True,
                  help="Which records from peers get their self-signatures re-verified.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        replication = ReplicationConfig(
            sync_port=kwargs.pop("sync_port"),
            sync_interval_s=kwargs.pop("sync_interval"),
            static_peers=tuple(kwargs.pop("sync_peers")),
            fanout=kwargs.pop("fanout"),
            verify_peer_records=kwargs.pop("verify_peer_records"),
        )
        return command(*args, replication=replication, **kwargs)

    return wrapper
