"""`--discovery mdns`: advertise and browse `_meshkp._udp.local.` with python-zeroconf.

TXT carries the wire version, cluster name, node id and ports; peers of another cluster name are
ignored. mDNS is unauthenticated and cleartext: it only suggests addresses. Whether a peer may
join is still decided by the cluster key on every gossip frame (docs/cluster-security.md).

`interfaces` pins zeroconf to given interface addresses (e.g. ["127.0.0.1"] inside a test's
network namespace) so discovery traffic never leaves them; None means every interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshkp.discovery.backoff import SeedSource
from meshkp.errors import ConfigError
from meshkp.net.addr import Addr, is_ip_literal

log = logging.getLogger(__name__)

SERVICE_TYPE = "_meshkp._udp.local."
TXT_VERSION = "1"

# Peers remembered from mDNS. A LAN (or a hostile host on it) could announce any number of
# services; past this bound new ones are ignored until old ones are removed.
MAX_PEERS = 1024
# Concurrent resolutions of announced services (each is a few mDNS queries for up to 3 s).
MAX_PENDING_RESOLVES = 32
# Milliseconds to wait for a service's SRV/TXT/A records.
RESOLVE_TIMEOUT_MS = 3000

_CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def validate_cluster_name(name: str) -> str:
    """Return name if usable as a cluster name (fits a TXT entry and a DNS label), else raise."""
    if not _CLUSTER_RE.match(name):
        raise ConfigError(
            f"cluster name {name!r} is invalid: 1-63 characters from A-Z a-z 0-9 . _ -"
        )
    return name


@dataclass(frozen=True, slots=True)
class MdnsPeer:
    """A node of our cluster seen on mDNS."""

    node_id: str
    addresses: tuple[str, ...]
    gossip_port: int
    http_port: int | None

    @property
    def gossip_addrs(self) -> list[Addr]:
        """(ip, gossip port) for each advertised address."""
        return [(a, self.gossip_port) for a in self.addresses]


def _port(value: str | None) -> int | None:
    if value is None or not value.isdigit() or not 0 < int(value) < 65536:
        return None
    return int(value)


def _is_loopback(host: str) -> bool:
    return is_ip_literal(host) and ipaddress.ip_address(host).is_loopback


def peer_from_txt(
    properties: dict[str, str | None], addresses: list[str], cluster: str, own_id: str,
    loopback_only: bool = False,
) -> MdnsPeer | None:
    """Validate a resolved service; None if it is foreign, ourselves, or malformed.

    With `loopback_only`, only loopback addresses count: zeroconf's receive socket is bound to
    0.0.0.0:5353, so it also hears the LAN whenever another process on the host (avahi) joined
    the mDNS group there, even when we pinned ourselves to 127.0.0.1.
    """
    if properties.get("v") != TXT_VERSION or properties.get("cluster") != cluster:
        return None
    node_id = properties.get("id")
    gossip = _port(properties.get("gossip"))
    if not node_id or len(node_id) > 64 or node_id == own_id or gossip is None:
        return None
    ips = tuple(a for a in addresses
                if is_ip_literal(a) and (not loopback_only or _is_loopback(a)))[:8]
    if not ips:
        return None
    return MdnsPeer(node_id, ips, gossip, _port(properties.get("http")))


class MdnsDiscovery(SeedSource):
    """Advertises this node and tracks same-cluster peers; `resolve()` gives their gossip addrs."""

    def __init__(
        self,
        cluster: str,
        node_id: str,
        gossip_port: int,
        advertise: list[str],
        http_port: int | None = None,
        interfaces: list[str] | None = None,
        on_peer: Callable[[MdnsPeer], None] | None = None,
    ) -> None:
        self.cluster = validate_cluster_name(cluster)
        if not advertise or not all(is_ip_literal(a) for a in advertise):
            raise ConfigError("mDNS needs the IP addresses to advertise (e.g. the gossip bind IP)")
        self._node_id = node_id
        self._gossip_port = gossip_port
        self._http_port = http_port
        self._advertise = advertise
        self._interfaces = interfaces
        # Pinned to loopback only (the default for a node on 127.0.0.1): never join other hosts.
        self._loopback_only = bool(interfaces) and all(map(_is_loopback, interfaces or []))
        self._on_peer = on_peer
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._peers: dict[str, MdnsPeer] = {}  # by service name
        self._tasks: set[asyncio.Task[None]] = set()
        self.ignored = 0  # announcements of other clusters, ourselves, or malformed

    def describe(self) -> str:
        return f"mdns:{self.cluster}"

    def peers(self) -> list[MdnsPeer]:
        """Same-cluster peers currently announced."""
        return list(self._peers.values())

    async def resolve(self) -> list[Addr]:
        return [addr for peer in self._peers.values() for addr in peer.gossip_addrs]

    async def start(self) -> None:
        """Open the mDNS sockets, register our service, start browsing (idempotent)."""
        if self._zc is not None:
            return
        interfaces = self._interfaces
        if interfaces is None:
            zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        else:
            zc = AsyncZeroconf(interfaces=list(interfaces))
        self._zc = zc
        props = {"v": TXT_VERSION, "cluster": self.cluster, "id": self._node_id,
                 "gossip": str(self._gossip_port)}
        if self._http_port is not None:
            props["http"] = str(self._http_port)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self._node_id}.{SERVICE_TYPE}",
            port=self._gossip_port,
            properties=props,
            parsed_addresses=self._advertise,
            server=f"meshkp-{self._node_id}.local.",
        )
        try:
            announced = await zc.async_register_service(self._info, allow_name_change=True)
            await announced
            self._browser = AsyncServiceBrowser(
                zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
            )
        except BaseException:
            await self.stop()
            raise
        log.info("event=mdns_started cluster=%s node_id=%s interfaces=%s", self.cluster,
                 self._node_id, ",".join(interfaces) if interfaces else "all")

    async def stop(self) -> None:
        """Unregister (goodbye packets), stop browsing, close sockets (idempotent)."""
        zc, self._zc = self._zc, None
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()  # first, so no new resolve task starts
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if zc is not None:
            await zc.async_close()  # unregisters every service first
            log.info("event=mdns_stopped node_id=%s", self._node_id)

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            peer = self._peers.pop(name, None)
            if peer is not None:
                log.info("event=mdns_peer_gone node_id=%s", peer.node_id)
            return
        if self._info is not None and name.lower() == self._info.name.lower():
            return  # our own announcement
        if len(self._tasks) >= MAX_PENDING_RESOLVES:
            log.debug("event=mdns_resolve_skipped name=%s reason=too_many_pending", name)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(zeroconf, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("event=mdns_resolve_timeout name=%s", name)
            return
        peer = peer_from_txt(
            info.decoded_properties, info.parsed_addresses(), self.cluster, self._node_id,
            loopback_only=self._loopback_only,
        )
        if peer is None:
            self.ignored += 1
            log.debug("event=mdns_ignored name=%s", name)
            return
        if name not in self._peers and len(self._peers) >= MAX_PEERS:
            log.warning("event=mdns_peer_limit max=%d name=%s", MAX_PEERS, name)
            return
        is_new = self._peers.get(name) != peer
        self._peers[name] = peer
        if is_new:
            log.info("event=mdns_peer node_id=%s addrs=%s gossip_port=%d", peer.node_id,
                     ",".join(peer.addresses), peer.gossip_port)
            if self._on_peer is not None:
                try:
                    self._on_peer(peer)
                except Exception:
                    log.exception("event=mdns_on_peer_failed node_id=%s", peer.node_id)
