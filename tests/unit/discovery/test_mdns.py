"""mDNS discovery: TXT validation, and 3 real processes finding each other inside a network
namespace the test creates (so multicast can never reach the host's network)."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.discovery.mdns import MdnsDiscovery, peer_from_txt, validate_cluster_name
from meshkp.errors import ConfigError
from tests.netns import loopback_netns

GOOD = {"v": "1", "cluster": "prod", "id": "abc", "gossip": "7946", "http": "11371"}


def test_peer_from_txt_accepts_same_cluster_only() -> None:
    peer = peer_from_txt(GOOD, ["10.0.0.2", "fe80::1"], "prod", "me")
    assert peer is not None and peer.gossip_addrs == [("10.0.0.2", 7946), ("fe80::1", 7946)]
    assert peer.http_port == 11371
    assert peer_from_txt(GOOD, ["10.0.0.2"], "staging", "me") is None  # other cluster
    assert peer_from_txt(GOOD, ["10.0.0.2"], "prod", "abc") is None  # ourselves
    assert peer_from_txt({**GOOD, "v": "2"}, ["10.0.0.2"], "prod", "me") is None
    assert peer_from_txt({**GOOD, "gossip": "99999"}, ["10.0.0.2"], "prod", "me") is None
    assert peer_from_txt({**GOOD, "id": None}, ["10.0.0.2"], "prod", "me") is None
    assert peer_from_txt(GOOD, ["not-an-ip"], "prod", "me") is None


def test_a_node_pinned_to_loopback_joins_only_loopback_peers() -> None:
    # zeroconf listens on 0.0.0.0:5353: with avahi on the host it hears LAN announcements even
    # when pinned to 127.0.0.1, and the node then opened gossip connections to other hosts.
    mixed = ["10.0.0.2", "127.0.0.5", "::1", "fe80::1"]
    peer = peer_from_txt(GOOD, mixed, "prod", "me", loopback_only=True)
    assert peer is not None and peer.addresses == ("127.0.0.5", "::1")
    assert peer_from_txt(GOOD, ["10.0.0.2"], "prod", "me", loopback_only=True) is None
    assert peer_from_txt(GOOD, mixed, "prod", "me").addresses == tuple(mixed)  # type: ignore[union-attr]


def test_config_is_validated_without_io() -> None:
    with pytest.raises(ConfigError):
        validate_cluster_name("has space")
    with pytest.raises(ConfigError):
        MdnsDiscovery("prod", "n1", 7946, advertise=[])
    MdnsDiscovery("prod", "n1", 7946, advertise=["127.0.0.1"])  # constructing opens nothing


@pytest.fixture
def netns() -> Iterator[str]:
    with loopback_netns("mkp-mdns") as name:
        yield name


@pytest.mark.netns
def test_three_nodes_find_each_other_and_ignore_another_cluster(netns: str) -> None:
    probe = Path(__file__).with_name("mdns_probe.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}

    def spawn(cluster: str, node: str, port: int, want: int, deadline: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(probe), cluster, node, str(port),
             str(want), str(deadline)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    procs = [spawn("alpha", f"n{i}", 7000 + 10 * i, 2, 20) for i in range(3)]
    procs.append(spawn("beta", "intruder", 7100, 1, 3))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    alpha = {r["node"]: r for r in results[:3]}
    for i in range(3):
        others = sorted([f"n{j}", 7000 + 10 * j, 7001 + 10 * j] for j in range(3) if j != i)
        assert alpha[f"n{i}"]["peers"] == others, alpha
        assert alpha[f"n{i}"]["ignored"] >= 1  # saw the beta node and refused it
    assert results[3]["peers"] == []  # beta alone in its cluster
