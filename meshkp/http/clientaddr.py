"""Who a request comes from, for rate limits and per-client bounds: an address and its key.

The peer address of the TCP connection is the client, unless the peer is one of the
operator's trusted proxies (`--trusted-proxy CIDR`, NodeConfig.trusted_proxies): only then is
`X-Forwarded-For` read, right to left, skipping the trusted hops, and its first untrusted
address is the client. A header from anyone else is ignored, or every client could name a
fresh address per request and never be limited. A request whose every hop is trusted (the
load balancer's own health checks, loopback tools) is exempt from the limits.

The key groups addresses the way one party holds them: an IPv4 address is one client, an IPv6
client is its /64 (RFC 4291 §2.5.4: one subnet, what one host or home gets; per address, a
single machine could take 2**64 buckets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from meshkp.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPV6_CLIENT_PREFIX = 64
# Peer addresses whose classification is memoised: a pool node sees thousands of clients,
# each asking many times; beyond it the memo is simply cleared.
MEMO_ENTRIES = 4096
# X-Forwarded-For entries read: a client may send its own header in front of the proxy's, and
# only the last hops (ours) matter.
MAX_FORWARDED_HOPS = 16


@dataclass(frozen=True, slots=True)
class Client:
    """`address` as seen (or forwarded), `key` the limits' unit, `exempt` trusted all the way."""

    address: str
    key: str
    exempt: bool


CLIENT_KEY = web.RequestKey("meshkp.client", Client)
# "Not memoised yet" in the peer memo, where None means "a trusted proxy".
_UNSEEN = Client("?", "?", False)


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The trusted proxy networks; ConfigError naming a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"trusted proxy {cidr!r} is not an address or CIDR "
                              "(e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)") from None
    return tuple(networks)


def client_key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)


class ClientResolver:
    """Request -> Client under one set of trusted proxies."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self.networks = parse_networks(trusted)
        self._memo: dict[str, tuple[IPAddress | None, bool]] = {}
        self._peers: dict[str, Client | None] = {}

    def _parse(self, text: str) -> tuple[IPAddress | None, bool]:
        """(address, trusted) of one address text; (None, False) if it is not an address."""
        found = self._memo.get(text)
        if found is None:
            try:
                address: IPAddress | None = ipaddress.ip_address(text.strip().strip("[]"))
            except ValueError:
                address = None
            trusted = address is not None and any(address in net for net in self.networks)
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            found = self._memo[text] = (address, trusted)
        return found

    def peer(self, peer: str) -> Client | None:
        """The Client of a connection from `peer`, or None when `peer` is a trusted proxy (its
        requests name their client in X-Forwarded-For: resolve each of them). Memoised: the
        key of an address is ~1 µs of ipaddress work, and a connection's peer never changes."""
        found = self._peers.get(peer, _UNSEEN)
        if found is _UNSEEN:
            found = None
            address, trusted = self._parse(peer)
            if not trusted:
                found = Client(peer, client_key(address) if address is not None else peer, False)
            if len(self._peers) >= MEMO_ENTRIES:
                self._peers.clear()
            self._peers[peer] = found
        return found

    def resolve(self, request: web.Request) -> Client:
        """The Client of one request: its connection's peer, or the client a trusted proxy
        forwarded."""
        peer = request.remote or "?"
        client = self.peer(peer)
        if client is not None:
            return client
        forwarded = request.headers.getall("X-Forwarded-For", ())
        hops = [hop.strip() for value in forwarded for hop in value.split(",")]
        for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
            hop_address, hop_trusted = self._parse(hop)
            if hop_address is None:
                # Garbage (or "unknown"): the proxy is all we know of the client. It is
                # limited as one client, not exempt, or such a header would lift limits.
                return Client(peer, peer, False)
            if not hop_trusted:
                return Client(str(hop_address), client_key(hop_address), False)
        return Client(peer, peer, True)
