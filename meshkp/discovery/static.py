"""`--join HOST:PORT` seeds: host names resolved with getaddrinfo, IP literals used as given."""

from __future__ import annotations

import asyncio
import logging
import socket

from meshkp.discovery.backoff import SeedSource
from meshkp.net.addr import DEFAULT_GOSSIP_PORT, Addr, format_addr, is_ip_literal, parse_hostport

log = logging.getLogger(__name__)

# Addresses taken from one name: a DNS answer could list thousands; we only need a few live seeds.
MAX_ADDRS_PER_NAME = 64


async def resolve_host(host: str, port: int) -> list[Addr]:
    """All IPv4/IPv6 addresses of host (A and AAAA, plus /etc/hosts), without blocking the loop."""
    if is_ip_literal(host):
        return [(host, port)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        log.info("event=resolve_failed host=%s error=%r", host, exc)
        return []
    addrs: dict[Addr, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addrs.setdefault((str(sockaddr[0]), int(sockaddr[1])), None)
    return list(addrs)[:MAX_ADDRS_PER_NAME]


class StaticSeeds(SeedSource):
    """Fixed HOST:PORT seeds (host names re-resolved at every attempt: IPs may change)."""

    def __init__(self, specs: list[str], default_port: int = DEFAULT_GOSSIP_PORT) -> None:
        self._targets = [parse_hostport(s, default_port) for s in specs]

    def describe(self) -> str:
        return ",".join(format_addr(t) for t in self._targets)

    async def resolve(self) -> list[Addr]:
        results = await asyncio.gather(*(resolve_host(h, p) for h, p in self._targets))
        return [addr for addrs in results for addr in addrs]
