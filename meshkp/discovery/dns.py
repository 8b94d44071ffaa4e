"""`--join dns:NAME[:PORT]` (all A/AAAA records) and `--join srv:NAME` (SRV targets and ports).

A/AAAA go through the system resolver (loop.getaddrinfo, which honours /etc/hosts and search
domains). SRV is not reachable through getaddrinfo, so we send one RFC 1035 query ourselves to
the nameservers of /etc/resolv.conf: UDP first, TCP if the answer is truncated. SRV names must be
fully qualified (search domains are not applied), e.g.
`srv:_gossip._udp.meshkp.default.svc.cluster.local`, which is what a Kubernetes headless service
publishes for a named port.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

from meshkp.discovery.backoff import SeedSource
from meshkp.discovery.dnswire import (
    MAX_MESSAGE,
    RCODE_NXDOMAIN,
    SrvAnswer,
    build_query,
    parse_resolv_conf,
    parse_srv_response,
)
from meshkp.discovery.static import MAX_ADDRS_PER_NAME, StaticSeeds, resolve_host
from meshkp.errors import ConfigError, DiscoveryError
from meshkp.net.addr import DEFAULT_GOSSIP_PORT, Addr, parse_hostport

log = logging.getLogger(__name__)

DNS_PORT = 53
# Seconds to wait for one nameserver; glibc's default (resolv.conf `timeout:`) is 5 s, but a
# join retries anyway, so a shorter wait keeps the loop moving.
QUERY_TIMEOUT = 2.0
# A UDP answer without EDNS0 is at most 512 bytes (RFC 1035 §4.2.1); we accept up to 4096 in
# case a resolver sends a larger one, and fall back to TCP when it sets TC.
UDP_ANSWER_BYTES = 4096


class DnsSeeds(SeedSource):
    """Every A and AAAA record of a name, each with the same gossip port."""

    def __init__(self, name: str, port: int = DEFAULT_GOSSIP_PORT) -> None:
        self._name, self._port = name, port

    def describe(self) -> str:
        return f"dns:{self._name}:{self._port}"

    async def resolve(self) -> list[Addr]:
        return await resolve_host(self._name, self._port)


class _UdpAnswer(asyncio.DatagramProtocol):
    def __init__(self, server: str, query_id: int) -> None:
        self.server, self.query_id = server, query_id
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        # Only the server we asked may answer (a spoofer must also guess the 16-bit id).
        if addr[0] == self.server and not self.done.done() and data[:2] == self.query_id.to_bytes(
            2, "big"
        ):
            self.done.set_result(data[:UDP_ANSWER_BYTES])

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _query_udp(
    server: str, port: int, query: bytes, query_id: int, timeout: float
) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _UdpAnswer(server, query_id), remote_addr=(server, port)
    )
    try:
        transport.sendto(query)
        async with asyncio.timeout(timeout):
            return await proto.done
    finally:
        transport.close()


async def _query_tcp(server: str, port: int, query: bytes, timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(server, port)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)  # RFC 1035 §4.2.2
            await writer.drain()
            length = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(min(length, MAX_MESSAGE))
        finally:
            writer.close()


async def query_srv(
    name: str, nameservers: list[tuple[str, int]], timeout: float = QUERY_TIMEOUT
) -> SrvAnswer:
    """Ask each nameserver in turn for name's SRV records; raise DiscoveryError if none answers."""
    errors: list[str] = []
    for server, port in nameservers:
        query_id = secrets.randbelow(1 << 16)
        query = build_query(query_id, name)
        try:
            reply = await _query_udp(server, port, query, query_id, timeout)
            answer = parse_srv_response(reply, query_id)
            if answer.truncated:
                reply = await _query_tcp(server, port, query, timeout)
                answer = parse_srv_response(reply, query_id)
            return answer
        except (OSError, TimeoutError, asyncio.IncompleteReadError, DiscoveryError) as exc:
            errors.append(f"{server}: {exc!r}")
    raise DiscoveryError(f"no nameserver answered the SRV query for {name}: {'; '.join(errors)}")


def system_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """Nameservers from resolv.conf (empty if the file is missing or unreadable)."""
    try:
        return [(s, DNS_PORT) for s in parse_resolv_conf(path.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError):
        return []


class SrvSeeds(SeedSource):
    """SRV targets of a name, each with its own port; targets resolved from the answer or DNS."""

    def __init__(
        self,
        name: str,
        nameservers: list[tuple[str, int]] | None = None,
        timeout: float = QUERY_TIMEOUT,
    ) -> None:
        self._name = name
        self._nameservers = nameservers
        self._timeout = timeout

    def describe(self) -> str:
        return f"srv:{self._name}"

    async def resolve(self) -> list[Addr]:
        servers = self._nameservers if self._nameservers is not None else system_nameservers()
        if not servers:
            log.info("event=srv_no_nameserver name=%s hint=check_/etc/resolv.conf", self._name)
            return []
        try:
            answer = await query_srv(self._name, servers, self._timeout)
        except DiscoveryError as exc:
            log.info("event=srv_failed name=%s error=%s", self._name, exc)
            return []
        if answer.rcode:
            log.info("event=srv_failed name=%s rcode=%s", self._name,
                     "NXDOMAIN" if answer.rcode == RCODE_NXDOMAIN else answer.rcode)
            return []
        records = sorted(answer.records, key=lambda r: (r.priority, -r.weight, r.target))
        addrs: dict[Addr, None] = {}
        for record in records[:MAX_ADDRS_PER_NAME]:
            hosts = answer.addresses.get(record.target)
            if hosts:
                found = [(h, record.port) for h in hosts]
            else:
                found = await resolve_host(record.target, record.port)
            for addr in found:
                addrs.setdefault(addr, None)
        return list(addrs)[:MAX_ADDRS_PER_NAME]


def parse_join_spec(spec: str, default_port: int = DEFAULT_GOSSIP_PORT) -> SeedSource:
    """Turn one `--join` value into a seed source: HOST:PORT, dns:NAME[:PORT] or srv:NAME."""
    if spec.startswith("dns:"):
        host, port = parse_hostport(spec[4:], default_port)
        return DnsSeeds(host, port)
    if spec.startswith(("srv:", "dns+srv:")):
        name = spec.split(":", 1)[1].strip()
        if not name:
            raise ConfigError(f"--join {spec!r}: expected srv:NAME")
        return SrvSeeds(name)
    return StaticSeeds([spec], default_port)
