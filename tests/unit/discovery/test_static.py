"""Static seeds: HOST:PORT specs and name resolution without blocking the loop."""

import pytest

from meshkp.discovery.dns import DnsSeeds, SrvSeeds, parse_join_spec
from meshkp.discovery.static import StaticSeeds
from meshkp.errors import ConfigError


async def test_static_seeds_resolve_names_and_literals() -> None:
    seeds = StaticSeeds(["127.0.0.1:7001", "localhost:7002", "no-such-host.invalid:7003"])
    addrs = await seeds.resolve()
    assert ("127.0.0.1", 7001) in addrs
    assert ("127.0.0.1", 7002) in addrs  # from /etc/hosts
    assert all(port != 7003 for _, port in addrs)  # unresolvable names give nothing, no error


async def test_dns_seeds_return_every_address_of_a_name() -> None:
    assert ("127.0.0.1", 9000) in await DnsSeeds("localhost", 9000).resolve()


def test_parse_join_spec_dispatches() -> None:
    assert isinstance(parse_join_spec("10.0.0.1:7946"), StaticSeeds)
    assert isinstance(parse_join_spec("dns:meshkp.default.svc:7946"), DnsSeeds)
    assert parse_join_spec("dns:meshkp").describe() == "dns:meshkp:7946"
    assert isinstance(parse_join_spec("srv:_gossip._udp.meshkp.svc.cluster.local"), SrvSeeds)
    with pytest.raises(ConfigError):
        parse_join_spec("srv:")
