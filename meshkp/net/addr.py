"""Peer addresses: the `Addr` type, parsing "host:port" / "[v6]:port", IP-literal checks.

`Addr` is defined here, at the lowest layer that handles addresses; the SWIM core, discovery and
replication all use this one. This module stays pure (no sockets), so protocol cores may import it.
"""

from __future__ import annotations

import ipaddress

from meshkp.errors import ConfigError

# A (host, port) pair: an IP literal or host name, and a port. On the wire it is a two-element
# msgpack array [host, port] (meshkp/swim/fields.py).
Addr = tuple[str, int]

# memberlist's and Serf's default gossip port; meshkp uses it when a peer spec omits the port.
DEFAULT_GOSSIP_PORT = 7946


def parse_hostport(spec: str, default_port: int | None = DEFAULT_GOSSIP_PORT) -> Addr:
    """Split "host:port", "[v6]:port", a bare host or a bare IPv6 address into (host, port).

    Surrounding blanks are ignored. A spec without a port gets `default_port`; with
    `default_port=None` the port is required. Anything else raises ConfigError saying what is
    wrong with the spec (callers parsing a peer's data catch it and fall back).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty peer address; expected HOST:PORT")
    host, port_text = spec, ""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ConfigError(f"peer address {spec!r} opens '[' without closing it")
        host, rest = spec[1:end], spec[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"peer address {spec!r}: expected ':' after ']'")
        port_text = rest[1:]
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
    # More than one ':' without brackets is a bare IPv6 address.
    if not host:
        raise ConfigError(f"peer address {spec!r} has no host")
    if not port_text:
        if default_port is None:
            raise ConfigError(f"peer address {spec!r} has no port; expected HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"peer address {spec!r}: port must be 1-65535")
    return host, int(port_text)


def format_addr(addr: Addr) -> str:
    """Render (host, port) as "host:port", bracketing IPv6 hosts."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip_literal(host: str) -> bool:
    """True if host is an IPv4/IPv6 address (sending to it never blocks on DNS)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
