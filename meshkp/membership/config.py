"""MembershipConfig: where the gossip listener binds, how it finds peers, the protocol profile."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshkp.discovery.backoff import RetryPolicy
from meshkp.discovery.dns import parse_join_spec
from meshkp.discovery.mdns import validate_cluster_name
from meshkp.errors import ConfigError
from meshkp.net.addr import DEFAULT_GOSSIP_PORT, is_ip_literal
from meshkp.net.tcp import TcpLimits
from meshkp.swim.config import SwimConfig


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Where the gossip listener binds, how it finds peers, and the protocol profile."""

    # Address the UDP and TCP gossip listeners bind to ("0.0.0.0" = every interface).
    bind_host: str = "0.0.0.0"
    # Gossip port, UDP and TCP (memberlist/Serf default 7946). 0 picks a free port (tests).
    gossip_port: int = DEFAULT_GOSSIP_PORT
    # Address other nodes use to reach us; None = bind_host if it is specific, else the address
    # of the interface that routes outward.
    advertise_host: str | None = None
    # `--join` values: HOST:PORT, dns:NAME[:PORT], srv:NAME.
    join: tuple[str, ...] = ()
    # "static" (join list only), "dns" (same, the list holds dns:/srv: names) or "mdns".
    discovery: str = "static"
    # Cluster name announced and matched in mDNS TXT records.
    cluster_name: str = "meshkp"
    # Interface addresses mDNS is pinned to; None = all interfaces.
    mdns_interfaces: tuple[str, ...] | None = None
    swim: SwimConfig = field(default_factory=SwimConfig.lan)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tcp: TcpLimits = field(default_factory=TcpLimits)

    def validate(self) -> MembershipConfig:
        """Raise ConfigError for a bad combination; return self."""
        if self.discovery not in ("static", "dns", "mdns"):
            raise ConfigError(f"--discovery must be static, dns or mdns, got {self.discovery!r}")
        if not 0 <= self.gossip_port < 65536:
            raise ConfigError(f"--gossip-port must be 0-65535, got {self.gossip_port}")
        if self.advertise_host is not None and not is_ip_literal(self.advertise_host):
            raise ConfigError("advertise host must be an IP address")
        if self.discovery == "mdns":
            validate_cluster_name(self.cluster_name)  # else start() fails after binding
        self.swim.validate()
        self.retry.validate()
        self.tcp.validate()
        for spec in self.join:
            parse_join_spec(spec)
        return self
