"""Three real `meshkp serve --config FILE` processes, each file the seed's [cluster] block with
loopback addresses and free ports, form a mesh: every node sees the three alive, and a key
uploaded to one reaches the others."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.net.crypto import generate_key, write_key_file
from tests.integration.conftest import FIXTURES, ServerProcess, start_server
from tests.integration.replication_mesh import armored, fingerprint
from tests.integration.test_membership import gossip_port, nodes_seen, wait_until

pytestmark = pytest.mark.integration

N = 3
SEED = FIXTURES / "seed-config.toml"


def adapted(seed: str, replacements: dict[str, str]) -> str:
    """The seed's text with each value replaced once (failing if the seed no longer has it)."""
    for old, new in replacements.items():
        assert seed.count(old) == 1, f"the seed block no longer holds {old!r} exactly once"
        seed = seed.replace(old, new)
    return seed


def node_file(root: Path, i: int, ports: list[int]) -> Path:
    me = f"127.0.0.1:{ports[i]}"
    peers = ", ".join(f'"127.0.0.1:{p}"' for j, p in enumerate(ports) if j != i)
    text = adapted(SEED.read_text(), {
        '"node-1"': f'"node-{i + 1}"',
        '"0.0.0.0:7946"': f'"{me}"',
        '"192.168.1.10:7946"': f'"{me}"',
        '"/var/lib/meshkp"': f'"{root / f"node-{i + 1}"}"',
        '"192.168.1.11:7946", "192.168.1.12:7946"': peers,
    })
    # Three nodes on one host need their own HKP ports; the seed's block does not set one.
    path = root / f"node-{i + 1}.toml"
    path.write_text(text + "\n[hkp]\nport = 0\n")
    return path


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    ports = [gossip_port() for _ in range(N)]
    key = tmp_path / "cluster.key"
    write_key_file(key, [generate_key()], overwrite=False)
    servers: list[ServerProcess] = []
    try:
        for i in range(N):
            data_dir = tmp_path / f"node-{i + 1}"
            data_dir.mkdir()
            # The operator's step of a real deployment: the same cluster key on every node.
            shutil.copy(key, data_dir / "cluster.key")
            config = node_file(tmp_path, i, ports)
            servers.append(start_server(data_dir, serve_args=("--config", str(config)), timeout=60))
        yield servers
    finally:
        for server in servers:
            server.stop(signal.SIGTERM)
        for server in servers:
            server.assert_no_bugs()


def test_the_seed_config_starts_a_converging_mesh(mesh: list[ServerProcess]) -> None:
    names = {f"node-{i + 1}" for i in range(N)}

    def views() -> list[dict[str, str]]:
        return [nodes_seen(server) for server in mesh]

    wait_until(lambda: all(view == dict.fromkeys(names, "alive") for view in views()), 60,
               "all 3 alive on every node", views)
    for server in mesh:
        assert "event=config_loaded" in server.log_text()
        assert server.data_dir.joinpath("keys").is_dir()  # data_dir came from the file

    reply = mesh[0].add(armored(1, seed=b"config-mesh"))
    assert reply.status == 200, reply.text
    want = fingerprint(1, seed=b"config-mesh")

    def everywhere() -> bool:
        return all(s.lookup(op="get", search=f"0x{want}").status == 200 for s in mesh)

    wait_until(everywhere, 30, "the uploaded key on all 3 nodes")
