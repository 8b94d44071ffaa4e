"""Wiring replication into a Node: listener, Replicator, service hooks, routes, metrics, tasks.

`install(node)` adds a setup hook; at start it reads the "replication" config section
(ReplicationConfig), the cluster keyring (`node.keyring` when membership set one, else
ReplicationConfig.cluster_key_file) and the live membership (`node.membership`, if any), and
plugs the Replicator into the KeyService (Merkle write hook, push and x-consistency
listeners) and the HTTP app (meshkp/http/cluster_sync.py). stop() of the node stops it.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

from meshkp.errors import ConfigError, PeerUnreachable
from meshkp.http.auth import load_or_create_token
from meshkp.http.cluster_sync import ClusterSyncHandlers, collect_changes
from meshkp.net.addr import format_addr
from meshkp.net.crypto import load_keyring
from meshkp.net.stats import NetStats
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import Message
from meshkp.replication.metrics import ReplicationMetrics
from meshkp.replication.peers import ByteMeter, PeerRef, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.replication.transport import (
    SYNC_META_KEY,
    MembershipPeers,
    ReplicationListener,
    parse_hostport,
)

log = logging.getLogger(__name__)

SECTION = "replication"


class _NoChannel:
    """The channel of a node without a cluster key: it has no peers to reach."""

    async def request(
        self, peer: PeerRef, message: Message, timeout: float, meter: ByteMeter | None = None
    ) -> Message:
        raise PeerUnreachable("replication is off: no cluster key configured")


def static_peer_refs(specs: tuple[str, ...]) -> list[PeerRef]:
    """PeerRefs of "host:port" replication addresses (named by their address)."""
    refs = []
    for spec in specs:
        addr = parse_hostport(spec)
        if addr is None:
            raise ConfigError(f"replication peer {spec!r} is not HOST:PORT")
        refs.append(PeerRef(spec, addr))
    return refs


async def _listen(
    node: Any, config: ReplicationConfig, keyring: Any, membership: Any, stats: NetStats
) -> ReplicationListener:
    """The started replication listener, on --sync-port, or by default on gossip port + 1.

    The default port is only a convention (peers learn the real one from the member meta):
    when it is taken (with gossip ports in the ephemeral range, by any outgoing connection
    that happened to get it) the listener takes a free port instead of failing the start.
    A port the operator chose must be free: ConfigError if not.
    """
    host = node.config.host
    gossip = getattr(getattr(membership, "config", None), "gossip_port", 0)
    implicit = config.sync_port == 0 and bool(gossip)
    port = gossip + 1 if implicit else config.sync_port
    listener = ReplicationListener((host, port), keyring, node.node_id, stats)
    try:
        await listener.start()
        return listener
    except OSError as exc:
        if not implicit or exc.errno != errno.EADDRINUSE:
            raise ConfigError(
                f"replication cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "choose another --sync-port (0 picks a free one)"
            ) from None
    log.warning("event=sync_port_fallback wanted=%s:%d reason=in_use action=free_port", host, port)
    listener = ReplicationListener((host, 0), keyring, node.node_id, stats)
    await listener.start()
    return listener


def install(node: Any) -> None:
    """Make `node` replicate once started (call before node.start())."""
    node.setup_hooks.append(_setup)


async def _setup(node: Any) -> None:
    config: ReplicationConfig = (node.config.extension(SECTION) or ReplicationConfig()).validate()
    keyring = getattr(node, "keyring", None)
    if keyring is None and config.cluster_key_file is not None:
        keyring = load_keyring(Path(config.cluster_key_file))
    membership = getattr(node, "membership", None)
    static = static_peer_refs(config.static_peers)
    stats = NetStats()
    listener: ReplicationListener | None = None
    channel: Any = _NoChannel()
    if keyring is not None:
        listener = await _listen(node, config, keyring, membership, stats)
        channel = listener.channel
    elif static or membership is not None:
        raise ConfigError(
            "replication needs the cluster key: pass --cluster-key-file (the same file on every node)"
        )
    peers: Any = MembershipPeers(membership, static) if membership is not None else StaticPeers(static)
    service = node.service
    replicator = Replicator(node.store, node.node_id, node.config.limits, config, peers, channel,
                            note_writes=service.note_writes)
    replicator.net_stats = stats
    service.write_hooks.append(replicator.ingest_hook)
    service.write_listeners.append(replicator.on_ingest)
    service.write_listeners.append(collect_changes)
    token = load_or_create_token(Path(node.config.data_dir), getattr(node.config, "admin_token", None))
    ClusterSyncHandlers(
        replicator, token, node.config.limits, node.config.default_consistency
    ).register(node.app)
    ReplicationMetrics(replicator, node.metrics.registry)
    if listener is not None:
        listener.handler = replicator.handle
        addr = listener.transport.local_addr
        replicator.sync_addr = addr
        if membership is not None:
            # Peers reach us at our gossip host on this port (announced in the member meta).
            announce = (membership.gossip_addr[0], addr[1])
            membership.update_meta({SYNC_META_KEY: format_addr(announce)})
        log.info("event=replication_listening node_id=%s addr=%s:%d peers=%d",
                 node.node_id, addr[0], addr[1], len(static))
    await replicator.start()
    node.replication = replicator

    async def stop(_node: Any) -> None:
        await replicator.stop()
        if listener is not None:
            await listener.stop()

    node.stop_hooks.append(stop)
