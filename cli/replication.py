"""`meshkp serve` options of replication (added by the `replication_options` decorator)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from meshkp.config import CONSISTENCY_LEVELS, NodeConfig
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.plugin import SECTION

_META_KEY = "meshkp.replication"
_DEFAULTS = ReplicationConfig()


def replication_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --sync-port, --sync-interval, --sync-peer, --consistency, --sync-key-file, --fanout."""

    @click.option("--sync-port", type=int, default=0, show_default=True,
                  help="Replication TCP port (0: gossip port + 1 with membership, else any).")
    @click.option("--sync-interval", type=float, default=_DEFAULTS.sync_interval_s,
                  show_default=True, help="Seconds between anti-entropy rounds.")
    @click.option("--sync-peer", "sync_peers", multiple=True, metavar="HOST:PORT",
                  help="Replication address of a peer to sync with besides membership (repeatable).")
    @click.option("--sync-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Cluster key file for replication when membership does not provide it.")
    @click.option("--fanout", type=int, default=_DEFAULTS.fanout, show_default=True,
                  help="Peers each change is pushed to.")
    @click.option("--verify-peer-records", type=click.Choice(["all", "push", "none"]),
                  default=_DEFAULTS.verify_peer_records, show_default=True,
                  help="Which records from peers get their self-signatures re-verified.")
    @click.option("--consistency", "default_consistency", type=click.Choice(CONSISTENCY_LEVELS),
                  default="one", show_default=True, help="Default x-consistency of POST /pks/add.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        section = ReplicationConfig(
            sync_port=kwargs.pop("sync_port"),
            sync_interval_s=kwargs.pop("sync_interval"),
            static_peers=tuple(kwargs.pop("sync_peers")),
            cluster_key_file=kwargs.pop("sync_key_file"),
            fanout=kwargs.pop("fanout"),
            verify_peer_records=kwargs.pop("verify_peer_records"),
        )
        click.get_current_context().meta[_META_KEY] = (section, kwargs.pop("default_consistency"))
        return command(*args, **kwargs)

    return wrapper


def with_replication_options(config: NodeConfig) -> NodeConfig:
    """`config` with what the replication options of the current command asked for."""
    found = click.get_current_context().meta.get(_META_KEY)
    if found is None:
        return config
    section, consistency = found
    return dataclasses.replace(
        config.with_extension(SECTION, section), default_consistency=consistency
    )
