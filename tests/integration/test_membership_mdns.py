"""Three `meshkp serve --discovery mdns` processes find each other with no --join, inside a
network namespace the test creates (only a loopback interface: multicast cannot leave it).
A fourth node with the same key but another --cluster-name is never joined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import REPO
from tests.netns import loopback_netns

pytestmark = [pytest.mark.integration, pytest.mark.netns]


@pytest.fixture
def netns() -> Iterator[str]:
    with loopback_netns("mkp-mesh") as name:
        yield name


POLLER = """
import json, sys, time, urllib.request
def view(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster/nodes", timeout=5) as r:
            return {n["id"]: n["status"] for n in json.load(r)["nodes"]}
    except OSError:
        return {}
began = time.monotonic()
alpha = {"m0": "alive", "m1": "alive", "m2": "alive"}
while True:
    views = [view(11371 + i) for i in range(4)]
    if (views[:3] == [alpha] * 3 and views[3]) or time.monotonic() - began > float(sys.argv[1]):
        break
    time.sleep(0.2)
print(json.dumps({"views": views, "seconds": time.monotonic() - began}))
"""


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "cli.main", *args]


def test_three_mdns_nodes_find_each_other(netns: str, tmp_path: Path) -> None:
    key = tmp_path / "cluster.key"
    write_key_file(key, [generate_key()], overwrite=False)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    nodes = [("m0", "alpha"), ("m1", "alpha"), ("m2", "alpha"), ("other", "beta")]
    try:
        for i, (node_id, cluster) in enumerate(nodes):
            log = open(tmp_path / f"{node_id}.log", "wb")  # noqa: SIM115 (child writes to it)
            procs.append(subprocess.Popen(
                in_ns(netns, "serve", "--data-dir", str(tmp_path / node_id), "--host",
                      "127.0.0.1", "--http-port", str(11371 + i), "--mesh", "--gossip-port",
                      str(7946 + 10 * i), "--discovery", "mdns", "--cluster-name", cluster,
                      "--cluster-key-file", str(key), "--gossip-profile", "test",
                      "--node-id", node_id, "--no-access-log"),
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()

        # One poller inside the namespace (its HTTP ports are unreachable from here).
        poller = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", POLLER, "60"],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        assert poller.returncode == 0, poller.stderr
        result = json.loads(poller.stdout)
        alpha = {"m0": "alive", "m1": "alive", "m2": "alive"}
        assert result["views"][:3] == [alpha] * 3, result
        assert result["views"][3] == {"other": "alive"}  # another cluster name: never joined
        print(f"\nmDNS: 3 nodes see each other {result['seconds']:.1f} s after launch")
        members = subprocess.run(
            in_ns(netns, "members", "--node", "http://127.0.0.1:11371"),
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert members.returncode == 0 and members.stdout.count("alive") == 3, members.stdout
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
