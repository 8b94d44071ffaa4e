"""Checks of the node's edge settings: trusted proxies, TLS files, the admin listener address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshkp.errors import ConfigError
from meshkp.http.clientaddr import parse_networks

if TYPE_CHECKING:
    from meshkp.node.config import NodeConfig

# The admin listener's host when --admin-listen gives only a port: loopback, as Consul binds its
# HTTP API, so the admin API is reachable only from the node's own host (or an SSH tunnel).
ADMIN_DEFAULT_HOST = "127.0.0.1"


def admin_address(spec: str) -> tuple[str, int]:
    """"PORT", "HOST:PORT" or "[V6]:PORT" -> (host, port); port 0 picks a free one."""
    text = spec.strip()
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or ADMIN_DEFAULT_HOST
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"admin_listen {spec!r}: expected PORT or HOST:PORT (port 0-65535), "
                          "e.g. 127.0.0.1:11372")
    return host, int(port_text)


def validate(config: NodeConfig) -> None:
    parse_networks(config.trusted_proxies)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together: pass both --tls-cert FILE and "
                          "--tls-key FILE, or neither (plain HTTP)")
    if config.admin_listen is not None:
        host, port = admin_address(config.admin_listen)
        if port and port == config.http_port and host == config.host:
            raise ConfigError("admin_listen must differ from the HKP listener: pick another port")
