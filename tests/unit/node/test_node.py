"""Node lifecycle on a real LevelDB in a temp dir: constructor without I/O, idempotent start
and stop, port 0, a clear error when the port is taken, and the CLI's command table."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from cli.main import COMMANDS, main
from meshkp.errors import ConfigError
from meshkp.membership.config import MembershipConfig
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node
from meshkp.replication.config import ReplicationConfig
from meshkp.swim.config import SwimConfig


def config(tmp_path: Path, **changes: object) -> NodeConfig:
    fields: dict[str, object] = dict(data_dir=tmp_path / "node", http_port=0, access_log=False)
    fields.update(changes)
    return NodeConfig(**fields)  # type: ignore[arg-type]


def test_constructor_does_no_io(tmp_path: Path) -> None:
    Node(config(tmp_path))
    assert not (tmp_path / "node").exists()


async def test_start_and_stop_are_idempotent(tmp_path: Path) -> None:
    node = Node(config(tmp_path))
    await node.start()
    await node.start()
    assert node.running and node.http_port != 0
    async with aiohttp.ClientSession() as session, session.get(node.url + "/pks/health") as reply:
        assert reply.status == 200
        assert (await reply.json())["node_id"] == node.node_id
    await node.stop()
    await node.stop()
    assert not node.running
    assert (tmp_path / "node" / "node.key").exists()


async def test_node_id_is_stable_across_restarts(tmp_path: Path) -> None:
    first = Node(config(tmp_path))
    await first.start()
    node_id = first.node_id
    await first.stop()
    second = Node(config(tmp_path))
    await second.start()
    assert second.node_id == node_id
    await second.stop()


async def test_port_in_use_is_a_config_error_and_releases_the_store(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = Node(config(tmp_path, http_port=port))
        with pytest.raises(ConfigError, match="cannot listen"):
            await node.start()
    again = Node(config(tmp_path))  # the LevelDB lock was released by the failed start
    await again.start()
    await again.stop()


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        NodeConfig(http_port=70000).validate()
    with pytest.raises(ConfigError):
        NodeConfig(default_consistency="most").validate()
    with pytest.raises(ConfigError):
        NodeConfig(node_id="bad id!").validate()


def test_cli_lists_existing_commands_only() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output and "dev" in result.output
    COMMANDS["ghost"] = "cli.does_not_exist:ghost"
    try:
        listed = CliRunner().invoke(main, ["--help"]).output
        assert "ghost" not in listed
        missing = CliRunner().invoke(main, ["ghost"])
        assert missing.exit_code != 0 and "No such command" in missing.output
    finally:
        del COMMANDS["ghost"]


def _free_port() -> int:
    """A loopback port free for UDP and TCP alike (gossip binds both), tried a few times."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no loopback port free for both UDP and TCP")


def mesh_config(tmp_path: Path, **changes: object) -> NodeConfig:
    membership = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, swim=SwimConfig.test())
    return config(tmp_path, membership=membership, **changes)


async def test_a_node_outside_a_mesh_has_no_membership_and_no_listener(tmp_path: Path) -> None:
    node = Node(config(tmp_path))
    await node.start()
    try:
        assert node.membership is None and node.keyring is None
        assert node.replicator is not None and node.replicator.sync_addr is None
        assert not (tmp_path / "node" / "cluster.key").exists()
    finally:
        await node.stop()


async def test_a_mesh_node_builds_every_part_and_stops_them(tmp_path: Path) -> None:
    node = Node(mesh_config(tmp_path))
    await node.start()
    try:
        assert node.membership is not None and node.membership.running
        assert node.replicator is not None and node.replicator.sync_addr is not None
        assert (tmp_path / "node" / "cluster.key").exists()  # created on first start
        async with aiohttp.ClientSession() as session, session.get(node.url + "/cluster/nodes") as reply:
            assert reply.status == 200
            body = await reply.json()
        [me] = body["nodes"]
        assert me["http"].endswith(f":{node.http_port}")  # the real port, announced after listen
        membership = node.membership
    finally:
        await node.stop()
    assert not membership.running
    assert node.membership is None and node.store is None


async def test_a_start_failing_half_way_stops_what_started(tmp_path: Path) -> None:
    # Membership starts, then the replication listener cannot bind: the node must stop
    # membership (its gossip port is free again) and close the store (LevelDB lock released).
    gossip_port = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        membership = MembershipConfig(bind_host="127.0.0.1", gossip_port=gossip_port,
                                      swim=SwimConfig.test())
        node = Node(config(tmp_path, membership=membership,
                           replication=ReplicationConfig(port=port)))
        with pytest.raises(ConfigError, match="replication cannot listen"):
            await node.start()
    assert not node.running and node.membership is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", gossip_port))  # membership released its gossip port
    retry = Node(config(tmp_path))
    await retry.start()
    await retry.stop()


async def test_every_transport_of_a_mesh_node_signs_with_one_identity(tmp_path: Path) -> None:
    """Membership, replication and the control plane share the node's FrameAuth: one key
    directory, and the configured clock-skew bound."""
    node = Node(dataclasses.replace(mesh_config(tmp_path), max_clock_skew_s=12.0))
    await node.start()
    try:
        auth = node.frame_auth
        assert auth is not None and auth.replay.max_skew == 12.0
        assert node.membership is not None and node.membership.auth is auth
        assert node.replicator is not None and node.replicator.peer_keys is auth.peers
        assert node.replicator.identity is node.identity
    finally:
        await node.stop()
    assert node.frame_auth is None
