"""The mesh parts of a Node (membership and replication), each with its start and stop together.

Like meshkp/node/parts.py: context managers entered into the Node's AsyncExitStack. They build
no HTTP routes; the Node adds those once every service exists (meshkp/node/routes.py).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from meshkp.errors import ConfigError, PeerUnreachable
from meshkp.keys.commit import Committer
from meshkp.keys.pool import WorkerPool
from meshkp.membership.config import MembershipConfig
from meshkp.membership.service import MembershipService
from meshkp.membership.sockets import outbound_ip
from meshkp.net.addr import format_addr, parse_hostport
from meshkp.net.compression import META_KEY as COMPRESSION_META_KEY
from meshkp.net.compression import META_VALUE as COMPRESSION_META_VALUE
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.stats import NetStats
from meshkp.node.config import NodeConfig
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import Message
from meshkp.replication.peers import ByteMeter, PeerRef, PeerSource, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.replication.transport import (
    SYNC_META_KEY,
    MembershipPeers,
    ReplicationListener,
)
from meshkp.store.executor import AsyncStore
from meshkp.swim.types import MemberInfo, Status

log = logging.getLogger(__name__)

HTTP_META_KEY = "http"  # member meta: the node's HKP address, shown by /cluster/nodes
AGENT_META_KEY = "agent"  # member meta: its HAProxy agent-check port (meshkp lb-config reads it)


def http_meta(config: NodeConfig, membership: MembershipConfig, port: int) -> dict[str, str]:
    """The member meta announcing this node's HKP address (and agent-check port) to its peers."""
    host = membership.advertise_host or outbound_ip(config.host)
    meta = {HTTP_META_KEY: format_addr((host, port))}
    if config.agent_check_port:
        meta[AGENT_META_KEY] = str(config.agent_check_port)
    return meta


def _sync_when_back(replicator: Replicator) -> Callable[[MemberInfo, Status | None, Status], None]:
    """A membership listener: a member back from dead or left gets the next sync round."""

    def changed(member: MemberInfo, old: Status | None, new: Status) -> None:
        if new is Status.ALIVE and old in (Status.DEAD, Status.LEFT):
            replicator.peer_returned(member.node_id)

    return changed


@asynccontextmanager
async def run_membership(
    config: NodeConfig, auth: FrameAuth, keyring: Keyring | None
) -> AsyncIterator[MembershipService]:
    """SWIM membership on the gossip port, joined to the configured seeds; left on exit."""
    settings = config.membership
    if settings is None or keyring is None:
        raise ConfigError("membership is off: run the node with --mesh")
    membership = MembershipService(
        settings, auth.identity, keyring, meta=http_meta(config, settings, config.http_port),
        data_dir=Path(config.data_dir), auth=auth,
    )
    await membership.start()
    try:
        yield membership
    finally:
        await membership.stop()


class _NoChannel:
    """The channel of a node without a cluster key: it has no peers to reach."""

    async def request(
        self, peer: PeerRef, message: Message, timeout: float, meter: ByteMeter | None = None
    ) -> Message:
        raise PeerUnreachable("replication is off: no cluster key configured (--cluster-key-file)")


def static_peer_refs(specs: Sequence[str]) -> list[PeerRef]:
    """PeerRefs of "host:port" replication addresses (named by their address)."""
    refs = []
    for spec in specs:
        try:
            addr = parse_hostport(spec, default_port=None)
        except ConfigError:
            raise ConfigError(f"replication peer {spec!r} is not HOST:PORT") from None
        refs.append(PeerRef(spec, addr))
    return refs


async def _listen(
    config: NodeConfig, auth: FrameAuth, keyring: Keyring, stats: NetStats
) -> ReplicationListener:
    """The started replication listener, on --replication-port, or by default on gossip port + 1.

    The default port is only a convention (peers learn the real one from the member meta):
    when it is taken (with gossip ports in the ephemeral range, by any outgoing connection
    that happened to get it) the listener takes a free port instead of failing the start.
    A port the operator chose must be free: ConfigError if not.
    """
    gossip = config.membership.gossip_port if config.membership is not None else 0
    implicit = config.replication.port == 0 and bool(gossip)
    port = gossip + 1 if implicit else config.replication.port
    compression = config.replication.compression
    listener = ReplicationListener((config.host, port), keyring, auth, stats,
                                   compression=compression)
    try:
        await listener.start()
        return listener
    except OSError as exc:
        if not implicit or exc.errno != errno.EADDRINUSE:
            raise ConfigError(
                f"replication cannot listen on {config.host}:{port}: {exc.strerror or exc}; "
                "choose another --replication-port (0 picks a free one)"
            ) from None
    log.warning("event=sync_port_fallback wanted=%s:%d reason=in_use action=free_port",
                config.host, port)
    listener = ReplicationListener((config.host, 0), keyring, auth, stats, compression=compression)
    await listener.start()
    return listener


@asynccontextmanager
async def run_replication(
    config: NodeConfig,
    node_id: str,
    store: AsyncStore,
    committer: Committer,
    pool: WorkerPool,
    keyring: Keyring | None,
    membership: MembershipService | None,
    auth: FrameAuth | None = None,
) -> AsyncIterator[Replicator]:
    """Push and anti-entropy with the mesh's peers (a listener only with a cluster key).

    Without a cluster key there is nobody to talk to, but the Replicator still keeps the
    Merkle tree, deletes and conflicts of the local store.
    """
    settings: ReplicationConfig = config.replication
    static = static_peer_refs(settings.static_peers)
    stats = NetStats()
    listener = (await _listen(config, auth, keyring, stats)
                if keyring is not None and auth is not None else None)
    try:
        peers: PeerSource = (MembershipPeers(membership, static) if membership is not None
                             else StaticPeers(static))
        channel = listener.channel if listener is not None else _NoChannel()
        # Its pusher observes the committer: it pushes what any commit of this node changed.
        replicator = Replicator(
            store, node_id, committer, settings, peers, channel, pool=pool,
            identity=auth.identity if auth is not None else None,
            peer_keys=auth.peers if auth is not None else None)
        replicator.net_stats = stats
        if membership is not None:
            membership.add_listener(_sync_when_back(replicator))
        if listener is not None:
            listener.handler = replicator.handle
            addr = listener.transport.local_addr
            replicator.sync_addr = addr
            if membership is not None:
                # Peers reach us at our gossip host on this port (announced in the member meta).
                announce = (membership.gossip_addr[0], addr[1])
                # Every node of this version decodes marked frames, whatever it sends itself.
                membership.update_meta({SYNC_META_KEY: format_addr(announce),
                                        COMPRESSION_META_KEY: COMPRESSION_META_VALUE})
            log.info("event=replication_listening node_id=%s addr=%s:%d peers=%d",
                     node_id, addr[0], addr[1], len(static))
        await replicator.start()
        try:
            yield replicator
        finally:
            await replicator.stop()
    finally:
        if listener is not None:
            await listener.stop()
