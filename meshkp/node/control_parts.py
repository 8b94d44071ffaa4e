"""The control plane of a Node: its storage, transport, founding and autopilot health.

`run_control` is a context manager the Node enters into its AsyncExitStack (as parts.py).
Founding: a node whose control store is empty bootstraps a new cluster only when it is nobody's
joiner: it runs alone (no mesh), or in a mesh without seeds (`--join`) and with static
discovery. It seeds the policy with its own `--limit` values and admin token. Every other node
starts empty and waits for the leader's autopilot to add it (docs/control-plane.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from meshkp.clock import SystemClock
from meshkp.control import ControlConfig, Health, Proposal, PutAdmin, RaftStorage, SetLimits, bootstrap
from meshkp.control.driver.loop import ExecutorStorage
from meshkp.control.driver.plane import ControlPlane
from meshkp.control.driver.tcp import CONTROL_META_KEY, TcpControlTransport, control_addr
from meshkp.control.raft.types import Restored
from meshkp.errors import ConfigError
from meshkp.keys.adminkey import admin_public_key
from meshkp.limits import Limits
from meshkp.membership.service import MembershipService
from meshkp.net.addr import Addr, format_addr, parse_hostport
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.node.config import NodeConfig
from meshkp.store.executor import AsyncStore
from meshkp.swim.types import MemberInfo, Status

log = logging.getLogger(__name__)

BOOTSTRAP_ADMIN = "admin"  # the name of the founding node's admin token in the policy


class _NoPeers:
    """The transport of a node without a mesh: a one-node cluster never sends."""

    def send(self, to: str, message: object) -> None:
        log.debug("event=control_send_dropped to=%s reason=no_mesh", to)


def runs_control(config: NodeConfig) -> bool:
    """Whether the node runs a control plane: in a mesh, or alone. Nodes that replicate with
    static peers (`--replication-peer`) but without a mesh cannot find each other's control plane,
    and each founding its own would give them diverging policies: they run none, and keep the
    policy they have (their own --limit options)."""
    return config.membership is not None or not config.replication.static_peers


def is_founder(config: NodeConfig) -> bool:
    """Whether this node founds a cluster when its control store is empty: it runs alone, or
    in a mesh with static discovery and no seed but itself (a node may list its own address)."""
    settings = config.membership
    if settings is None:
        return True
    own_hosts = {settings.bind_host, settings.advertise_host, config.host, "127.0.0.1", "localhost", "::1"}
    for spec in settings.join:
        try:
            host, port = parse_hostport(spec, default_port=settings.gossip_port)
        except ConfigError:
            return False
        if port != settings.gossip_port or host not in own_hosts:
            return False
    return settings.discovery == "static"


def seed_commands(config: NodeConfig, node_id: str, admin_token: str) -> list[bytes]:
    """The founding policy: this node's limits and its admin token (hashed)."""
    limits = SetLimits(dataclasses.asdict(config.limits))
    admin = PutAdmin(BOOTSTRAP_ADMIN, hashlib.sha256(admin_token.encode()).digest(),
                     admin_public_key(admin_token))
    return [Proposal(cmd, "bootstrap", node_id).encode() for cmd in (limits, admin)]


class MemberHealth:
    """SWIM's view for the autopilot: alive or not, and since when (this node's clock)."""

    def __init__(self, membership: MembershipService, clock: SystemClock) -> None:
        self.membership = membership
        self.clock = clock
        self._health: dict[str, Health] = {}
        membership.add_listener(self._changed)

    def _changed(self, member: MemberInfo, old: Status | None, new: Status) -> None:
        self._health[member.node_id] = Health(new == Status.ALIVE, self.clock.now())

    def __call__(self) -> Mapping[str, Health]:
        now = self.clock.now()
        for member in self.membership.members():
            alive = member.status == Status.ALIVE
            known = self._health.get(member.node_id)
            if known is None or known.alive != alive:
                self._health[member.node_id] = Health(alive, now)
        # LEFT members are gone on purpose: say dead, so a voter that left is replaced.
        return dict(self._health)

    def addr_of(self, node_id: str) -> Addr | None:
        # Called for every control message sent: one lookup, not a copy of the member table.
        member = self.membership.member(node_id)
        return control_addr(dict(member.meta)) if member is not None else None


def _restore(storage: RaftStorage, founder: bool, node_id: str, seed: list[bytes]) -> Restored:
    """Load the Raft state (blocking; runs on the store's writer thread), founding if asked."""
    if storage.is_empty():
        if founder:
            cluster = secrets.token_hex(8)  # names this cluster for good (membership.Generation)
            storage.initialize(bootstrap(node_id, seed, cluster_id=cluster))
            log.info("event=control_bootstrapped node=%s cluster=%s", node_id, cluster)
        else:
            log.info("event=control_waiting_to_join node=%s hint=the_leader_adds_this_node_as_learner",
                     node_id)
    return storage.load()


# How long after start the node waits to have caught up with the log before comparing its
# --limit values with the cluster policy, and how often it looks.
CATCH_UP_WAIT = 60.0
CATCH_UP_POLL = 0.1


async def warn_on_differing_limits(plane: ControlPlane, limits: Limits) -> None:
    """Once caught up with the log, warn if the cluster's limits differ from this node's."""
    for _ in range(int(CATCH_UP_WAIT / CATCH_UP_POLL)):
        core = plane.core
        if plane.state.version > 0 and core.leader and core.applied >= core.commit:
            break
        await asyncio.sleep(CATCH_UP_POLL)
    else:
        return
    policy = plane.state.limits
    differ = [f"{f.name}={getattr(limits, f.name)}(policy:{getattr(policy, f.name)})"
              for f in dataclasses.fields(policy) if getattr(limits, f.name) != getattr(policy, f.name)]
    if differ:
        log.warning("event=control_limits_differ node_limits=%s hint=the_cluster_policy_wins_"
                    "change_it_with_PUT_/cluster/policy_(meshkp_policy_set)", ",".join(differ))


@asynccontextmanager
async def run_control(config: NodeConfig, node_id: str, store: AsyncStore, admin_token: str,
                      keyring: Keyring | None, membership: MembershipService | None,
                      auth: FrameAuth | None = None) -> AsyncIterator[ControlPlane]:
    """The started ControlPlane (with its TCP listener in a mesh); stopped on exit."""
    clock = SystemClock()
    control: ControlConfig = config.control
    storage = RaftStorage(store.store)
    seed = seed_commands(config, node_id, admin_token)
    founder = is_founder(config)
    restored = await store.run_exclusive(lambda _view: _restore(storage, founder, node_id, seed))
    transport: TcpControlTransport | None = None
    health: MemberHealth | None = None
    if membership is not None and keyring is not None and auth is not None:
        health = MemberHealth(membership, clock)
        transport = TcpControlTransport((config.host, 0), keyring, auth, health.addr_of)
        addr = await transport.start()
        membership.update_meta({CONTROL_META_KEY: format_addr((membership.gossip_addr[0], addr[1]))})
    plane = ControlPlane(node_id, control, ExecutorStorage(storage, store), restored,
                         transport if transport is not None else _NoPeers(), clock, health=health,
                         net_stats=transport.stats if transport is not None else None)
    if transport is not None:
        transport.receive = plane.driver.receive
    plane.start()
    check = asyncio.get_running_loop().create_task(warn_on_differing_limits(plane, config.limits))
    log.info("event=control_started node=%s founder=%s voters=%s", node_id, founder,
             ",".join(sorted(plane.core.configuration.voters)) or "-")
    try:
        yield plane
    finally:
        check.cancel()
        await plane.stop()
        if transport is not None:
            await transport.stop()
