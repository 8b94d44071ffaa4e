"""Wiring membership into a Node: keyring, MembershipService, /cluster/* routes, stop hook.

`install(node)` adds a setup hook (call it before the replication plugin's install, which reads
`node.membership` and `node.keyring`). With the "gossip" config section absent or disabled the
node runs alone, as before. See docs/discovery.md and docs/cluster-security.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshkp.errors import ConfigError
from meshkp.http.auth import load_or_create_token
from meshkp.http.cluster import ClusterHandlers
from meshkp.net.addr import DEFAULT_GOSSIP_PORT, format_addr, is_ip_literal
from meshkp.net.crypto import Keyring, generate_key, load_keyring, write_key_file
from meshkp.node.membership import MembershipConfig, MembershipService, outbound_ip
from meshkp.swim.config import SwimConfig

log = logging.getLogger(__name__)

SECTION = "gossip"
DEFAULT_KEY_FILE = "cluster.key"
PROFILES = {"lan": SwimConfig.lan, "local": SwimConfig.local, "test": SwimConfig.test}
# How long the plugin waits for the HTTP listener to report its real port (with --http-port 0)
# before announcing it in the member meta.
HTTP_PORT_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class GossipSettings:
    """The `meshkp serve` options of membership (the "gossip" extension of NodeConfig)."""

    # Off: the node runs alone (no gossip sockets). On when any gossip option is given.
    enabled: bool = False
    # UDP+TCP gossip port. 0 picks a free port (tests).
    gossip_port: int = DEFAULT_GOSSIP_PORT
    # Bind address of the gossip listeners; None = the node's --host.
    bind_host: str | None = None
    # Address announced to peers; None = bind address, or the default route's if 0.0.0.0.
    advertise_host: str | None = None
    # --join values (HOST:PORT, dns:NAME[:PORT], srv:NAME), repeatable.
    join: tuple[str, ...] = ()
    # static | dns | mdns
    discovery: str = "static"
    # Cluster keyring file; None = DATA_DIR/cluster.key, created on first start.
    cluster_key_file: Path | None = None
    # Name matched in mDNS TXT records.
    cluster_name: str = "meshkp"
    # Interfaces mDNS may use; None = the bind address if specific, else all interfaces.
    mdns_interfaces: tuple[str, ...] | None = None
    # SwimConfig profile: lan (memberlist defaults), local (one host), test (fast timers).
    profile: str = "lan"

    def validate(self) -> GossipSettings:
        """Raise ConfigError on a bad value; return self."""
        if self.profile not in PROFILES:
            raise ConfigError(f"--gossip-profile must be one of {', '.join(PROFILES)}")
        if self.advertise_host is not None and not is_ip_literal(self.advertise_host):
            raise ConfigError("--advertise-addr must be an IP address")
        self.membership_config("127.0.0.1")  # validates the rest
        return self

    def membership_config(self, node_host: str) -> MembershipConfig:
        """The MembershipConfig these settings describe, for a node listening on node_host."""
        bind = self.bind_host or node_host
        mdns = self.mdns_interfaces
        if mdns is None and bind not in ("0.0.0.0", "::", ""):
            mdns = (bind,)  # keep discovery on the interface we serve on (never leaks from lo)
        return MembershipConfig(
            bind_host=bind, gossip_port=self.gossip_port, advertise_host=self.advertise_host,
            join=self.join, discovery=self.discovery, cluster_name=self.cluster_name,
            mdns_interfaces=mdns, swim=PROFILES[self.profile](),
        ).validate()


def install(node: Any) -> None:
    """Make `node` join the cluster once started (call before node.start())."""
    node.setup_hooks.append(_setup)


def load_or_create_keyring(path: Path) -> Keyring:
    """The keyring in path, created with one fresh key if the file does not exist."""
    if not path.exists():
        write_key_file(path, [generate_key()], overwrite=False)
        log.warning("event=cluster_key_created path=%s hint=copy_this_file_to_every_node", path)
    return load_keyring(path)


async def _setup(node: Any) -> None:
    settings: GossipSettings | None = node.config.extension(SECTION)
    data_dir = Path(node.config.data_dir)
    token = load_or_create_token(data_dir, getattr(node.config, "admin_token", None))
    if settings is None or not settings.enabled:
        node.membership = None
        return
    settings.validate()
    key_file = settings.cluster_key_file or data_dir / DEFAULT_KEY_FILE
    loop = asyncio.get_running_loop()
    keyring = await loop.run_in_executor(None, load_or_create_keyring, key_file)
    config = settings.membership_config(node.config.host)
    http_host = config.advertise_host or outbound_ip(node.config.host)
    meta = {"http": format_addr((http_host, node.config.http_port))}
    membership = MembershipService(config, node.identity, keyring, meta=meta, data_dir=data_dir)
    await membership.start()
    node.keyring = keyring
    node.membership = membership
    handlers = ClusterHandlers(membership, token, on_leave=node.stop)
    handlers.register(node.app)
    node.metrics.registry.register(membership.stats.collector())
    if node.config.http_port == 0:
        node.spawn(_announce_http_port(node, membership, http_host), "announce-http-port")

    async def stop(_node: Any) -> None:
        await handlers.close()
        await membership.stop()

    node.stop_hooks.append(stop)


async def _announce_http_port(node: Any, membership: MembershipService, host: str) -> None:
    """With --http-port 0 the port is known only once the listener runs: gossip it then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HTTP_PORT_WAIT_S
    while not node.running and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if node.running:
        membership.update_meta({"http": format_addr((host, node.http_port))})
