"""`meshkp serve --config`: flags the operator typed > MESHKP_* variables > the file > defaults,
and the flag tables agree with the config keys and the dataclasses' defaults."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.main import main
from cli.mesh_options import MESH_FLAGS
from cli.replication_options import REPLICATION_FLAGS
from cli.serve import SERVE_FLAGS, serve, serve_settings
from meshkp.node.config import NodeConfig
from meshkp.node.settings.build import UPLOAD_CAP, Resolved, build
from meshkp.node.settings.keys import KEYS
from meshkp.node.settings.layers import FLAG, Origin, Setting

FILE = """\
[cluster]
enabled = true
bind_address = "127.0.0.2:7000"
data_dir = "/srv/from-file"
[cluster.replication]
sync_interval = "30s"
[hkp]
host = "0.0.0.0"
port = 1111
[limits]
uid_bytes = 4096
[log]
level = "warning"
"""


def settings(tmp_path: Path, args: list[str], environ: dict[str, str] | None = None,
             text: str | None = FILE) -> Resolved:
    path = None
    if text is not None:
        path = tmp_path / "meshkp.toml"
        path.write_text(text)
    ctx = serve.make_context("serve", list(args))
    with ctx:
        return serve_settings(ctx, path, environ or {})


def test_the_file_fills_in_what_no_flag_or_variable_gives(tmp_path: Path) -> None:
    config = settings(tmp_path, []).config
    assert (config.host, config.http_port, config.data_dir) == ("0.0.0.0", 1111, Path("/srv/from-file"))
    assert config.log_level == "WARNING" and config.limits.uid_bytes == 4096
    assert config.replication.sync_interval_s == 30.0
    assert config.membership is not None and config.membership.bind_host == "127.0.0.2"


def test_flags_beat_variables_beat_the_file(tmp_path: Path) -> None:
    env = {"MESHKP_HKP_PORT": "2222", "MESHKP_LOG_LEVEL": "error"}
    assert settings(tmp_path, [], env).config.http_port == 2222
    assert settings(tmp_path, ["--http-port", "3333"], env).config.http_port == 3333
    assert settings(tmp_path, ["--http-port", "3333"], env).config.log_level == "ERROR"
    assert settings(tmp_path, [], {}, text=None).config.http_port == NodeConfig().http_port


def test_a_flag_given_at_its_default_value_still_beats_the_file(tmp_path: Path) -> None:
    config = settings(tmp_path, ["--http-port", "11371", "--sync-interval", "10"]).config
    assert config.http_port == 11371 and config.replication.sync_interval_s == 10.0


def test_flags_left_out_do_not_hide_the_file(tmp_path: Path) -> None:
    # --host has a default (127.0.0.1) that must not replace the file's 0.0.0.0.
    assert settings(tmp_path, ["--http-port", "0"]).config.host == "0.0.0.0"


def test_no_mesh_overrides_an_enabled_file(tmp_path: Path) -> None:
    resolved = settings(tmp_path, ["--no-mesh"])
    assert resolved.config.membership is None
    assert [o.label for o in resolved.unused] == ["[cluster] bind_address"]


def test_gossip_port_flag_changes_only_the_port_of_bind_address(tmp_path: Path) -> None:
    membership = settings(tmp_path, ["--gossip-port", "7100"]).config.membership
    assert membership is not None
    assert (membership.bind_host, membership.gossip_port) == ("127.0.0.2", 7100)


def test_limit_flags_beat_the_file_and_read_sizes(tmp_path: Path) -> None:
    limits = settings(tmp_path, ["--limit", "uid_bytes=1024", "--limit", "key_bytes=2MiB"]).config.limits
    assert (limits.uid_bytes, limits.key_bytes) == (1024, 2 << 20)


def test_mesh_flags_are_usage_errors_on_a_node_alone_even_with_a_file(tmp_path: Path) -> None:
    with pytest.raises(click.UsageError, match="--join: configures the mesh, but this node runs alone"):
        settings(tmp_path, ["--join", "127.0.0.1:7946"], text="[hkp]\nport = 0\n")


def test_serve_reports_every_problem_of_file_variables_and_flags_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[hkp]\nprot = 1\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--limit", "bogus=1",
                                       "--data-dir", str(tmp_path / "d")],
                                env={"MESHKP_HKP_PORT": "x"})
    assert result.exit_code == 2
    assert f"{path}:2: [hkp] prot: unknown key" in result.output
    assert "environment: MESHKP_HKP_PORT" in result.output
    assert "command line: --limit bogus=1" in result.output
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_the_config_file_can_come_from_meshkp_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[hkp]\nport = 70000\n")
    result = CliRunner().invoke(main, ["serve"], env={"MESHKP_CONFIG": str(path)})
    assert result.exit_code == 2 and f"{path}:2: [hkp] port" in result.output


ALL_FLAGS = {**SERVE_FLAGS, **MESH_FLAGS, **REPLICATION_FLAGS}


def test_every_option_of_serve_has_a_target_and_every_key_flag_is_an_option() -> None:
    params = {p.name for p in serve.params} - {"config_file", "limit_overrides"}
    assert params == set(ALL_FLAGS)
    by_flag = {target.flag: target for target in ALL_FLAGS.values()}
    for key in KEYS:
        if key.flag is not None:
            assert by_flag[key.flag].target in key.targets, key.path


def test_the_defaults_serve_shows_are_the_config_defaults() -> None:
    # A default in --help that differs from the dataclass's would be a lie once flags only
    # count when typed; this keeps the two from drifting.
    built = build({}).config
    mesh = build({"mesh": _flag(True)}).config.membership
    assert mesh is not None
    with serve.make_context("serve", []) as ctx:
        defaults = dict(ctx.params)
    checked = 0
    for name, target in ALL_FLAGS.items():
        default = defaults[name]
        if default in (None, ()) or target.target in (UPLOAD_CAP, "mesh"):
            continue  # "not given": the config's own default (or a derived one) applies
        section, _, field = target.target.partition(".")
        if field == "profile":
            profile = build({"mesh": _flag(True), "membership.profile": _flag(default)})
            assert profile.config.membership is not None and profile.config.membership.swim == mesh.swim
        else:
            holder = {"node": built, "replication": built.replication, "membership": mesh}[section]
            assert target.convert(default) == getattr(holder, field), name
        checked += 1
    assert checked >= 12


def _flag(value: object) -> Setting:
    return Setting(value, Origin(FLAG, "test", "test"))
