"""`meshkp serve` options become a NodeConfig: the mesh switch, one key option, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.delete import delete, sync
from cli.main import main
from cli.node_client import TOKEN_ENV
from meshkp.membership.config import MembershipConfig
from meshkp.node.settings.build import build
from meshkp.node.settings.layers import FLAG, Origin, Setting


def membership_config(host: str, gossip_profile: str = "lan") -> MembershipConfig:
    """The membership section of `serve --mesh --host HOST --gossip-profile PROFILE`."""
    values = {"mesh": True, "node.host": host, "membership.profile": gossip_profile}
    config = build({t: Setting(v, Origin(FLAG, t, t)) for t, v in values.items()}).config
    assert config.membership is not None
    return config.membership


@pytest.mark.parametrize("option", [["--join", "127.0.0.1:7946"], ["--gossip-port", "7946"],
                                    ["--discovery", "mdns"], ["--gossip-profile", "test"]])
def test_mesh_options_without_mesh_are_a_usage_error(tmp_path: Path, option: list[str]) -> None:
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path / "d"), *option])
    assert result.exit_code == 2
    assert "add --mesh" in result.output and option[0] in result.output
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_replication_peers_without_a_cluster_key_are_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path / "d"),
                                       "--replication-peer", "127.0.0.1:7947"])
    assert result.exit_code == 2
    assert "--cluster-key-file" in result.output


def test_membership_binds_and_pins_mdns_to_the_node_host() -> None:
    config = membership_config("127.0.0.1")
    assert config.bind_host == "127.0.0.1" and config.mdns_interfaces == ("127.0.0.1",)
    assert config.gossip_port == 7946
    everywhere = membership_config("0.0.0.0")
    assert everywhere.mdns_interfaces is None


def test_mesh_profile_selects_the_swim_timers() -> None:
    fast = membership_config("127.0.0.1", gossip_profile="test")
    lan = membership_config("127.0.0.1")
    assert fast.swim.probe_interval < lan.swim.probe_interval


@pytest.mark.parametrize("command", [delete, sync])
def test_missing_token_file_is_a_clean_error(tmp_path: Path, command: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # `meshkp delete` and `sync` printed a FileNotFoundError traceback here.
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    args = ["--token-file", str(tmp_path / "missing")]
    if command is delete:
        args += ["--reason", "test", "ABCD"]
    result = CliRunner().invoke(command, args)  # type: ignore[arg-type]
    assert result.exit_code == 1
    assert "cannot read admin token" in result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught exception
