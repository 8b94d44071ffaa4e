"""The TOML config file: the seed's block parses, every key lands on its NodeConfig field, and
every kind of mistake is one clear error on the line where it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from meshkp.control.config import ControlConfig
from meshkp.errors import InvalidSettings
from meshkp.limits import Limits
from meshkp.node.config import NodeConfig
from meshkp.node.settings.build import Resolved, resolve
from meshkp.node.settings.keys import KEYS
from meshkp.node.settings.toml_file import parse_config_text, read_config_file
from meshkp.node.settings.units import format_duration
from meshkp.swim.config import SwimConfig
from tests.integration.conftest import FIXTURES

SEED = FIXTURES / "seed-config.toml"


def load(text: str, name: str = "node.toml") -> Resolved:
    layer, problems = parse_config_text(text, name)
    return resolve(layer, problems)


def errors_of(text: str, name: str = "bad.toml") -> list[str]:
    with pytest.raises(InvalidSettings) as caught:
        load(text, name)
    return caught.value.errors


def test_the_seed_block_parses_into_a_mesh_node() -> None:
    layer, problems = read_config_file(SEED)
    assert problems == []
    resolved = resolve(layer)
    config = resolved.config
    assert config.node_id == "node-1" and config.data_dir == Path("/var/lib/meshkp")
    assert config.membership is not None
    assert (config.membership.bind_host, config.membership.gossip_port) == ("0.0.0.0", 7946)
    assert config.membership.advertise_host == "192.168.1.10"
    assert config.membership.discovery == "static"
    assert config.membership.join == ("192.168.1.11:7946", "192.168.1.12:7946")
    assert config.replication.sync_interval_s == 30.0
    assert config.replication.sync_batch_records == 1000
    assert resolved.consensus == {"algorithm": "raft", "heartbeat_timeout": 1.0,
                                  "election_timeout": 1.0, "commit_timeout": 0.05}
    assert resolved.unused == ()


# Every hand-written key, a value that is not its default, and where it must land.
EXPLICIT = {
    "cluster.enabled": ("true", lambda c: c.membership is not None),
    "cluster.node_id": ('"n-7"', lambda c: c.node_id == "n-7"),
    "cluster.bind_address": ('"127.0.0.2:7000"', lambda c: (c.membership.bind_host,
                                                            c.membership.gossip_port)
                             == ("127.0.0.2", 7000)),
    "cluster.advertise_address": ('"10.1.2.3"', lambda c: c.membership.advertise_host == "10.1.2.3"),
    "cluster.data_dir": ('"/srv/meshkp"', lambda c: c.data_dir == Path("/srv/meshkp")),
    "cluster.key_file": ('"/etc/meshkp/cluster.key"',
                         lambda c: c.cluster_key_file == Path("/etc/meshkp/cluster.key")),
    "cluster.name": ('"prod"', lambda c: c.membership.cluster_name == "prod"),
    "cluster.max_clock_skew": ('"1m"', lambda c: c.max_clock_skew_s == 60),
    "cluster.consensus.algorithm": ('"raft"', None),
    "cluster.consensus.profile": ('"local"', lambda c: c.control.learner_stable_time == 2.0),
    "cluster.consensus.heartbeat_timeout": ('"2s"', lambda c: c.control.election_timeout_min == 2.0),
    "cluster.consensus.election_timeout": ('"3s"', lambda c: c.control.election_timeout_max == 6.0),
    "cluster.consensus.commit_timeout": ('"20ms"', lambda c: c.control.heartbeat_interval == 0.02),
    "cluster.consensus.snapshot_threshold": ("64", lambda c: c.control.snapshot_threshold == 64),
    "cluster.consensus.trailing_logs": ("8", lambda c: c.control.snapshot_trailing_entries == 8),
    "cluster.discovery.method": ('"mdns"', lambda c: c.membership.discovery == "mdns"),
    "cluster.discovery.peers": ('["127.0.0.3:7000"]', lambda c: c.membership.join == ("127.0.0.3:7000",)),
    "cluster.discovery.mdns_interfaces": ('["127.0.0.2"]',
                                          lambda c: c.membership.mdns_interfaces == ("127.0.0.2",)),
    "cluster.replication.sync_interval": ('"1m"', lambda c: c.replication.sync_interval_s == 60),
    "cluster.replication.batch_size": ("500", lambda c: c.replication.sync_batch_records == 500),
    "cluster.replication.compression": ('"none"', None),
    "cluster.replication.port": ("7100", lambda c: c.replication.port == 7100),
    "cluster.replication.peers": ('["127.0.0.4:7101"]',
                                       lambda c: c.replication.static_peers == ("127.0.0.4:7101",)),
    "cluster.replication.fanout": ("5", lambda c: c.replication.fanout == 5),
    "cluster.replication.origin_fanout": ("2", lambda c: c.replication.origin_fanout == 2),
    "cluster.replication.verify_peer_records": ('"all"',
                                                lambda c: c.replication.verify_peer_records == "all"),
    "cluster.replication.sync_jitter": ("0.5", lambda c: c.replication.sync_jitter == 0.5),
    "cluster.replication.first_sync_delay": ('"2s"', lambda c: c.replication.first_sync_delay_s == 2),
    "cluster.replication.snapshot_bootstrap": ("false",
                                               lambda c: c.replication.snapshot_bootstrap is False),
    "cluster.replication.diff_protocol": ('"merkle"',
                                          lambda c: c.replication.diff_protocol == "merkle"),
    "cluster.replication.far_behind_differences": (
        "500", lambda c: c.replication.far_behind_differences == 500),
    "cluster.replication.push_queue_max": ("1000", lambda c: c.replication.push_queue_max == 1000),
    "cluster.replication.push_batch_records": ("64",
                                               lambda c: c.replication.push_batch_records == 64),
    "cluster.replication.scan_batch_records": ("2048",
                                               lambda c: c.replication.scan_batch_records == 2048),
    "cluster.replication.batch_bytes": ('"1MiB"', lambda c: c.replication.batch_bytes == 1 << 20),
    "cluster.replication.request_timeout": ('"3s"', lambda c: c.replication.request_timeout_s == 3),
    "cluster.replication.consistency_timeout": ('"1500ms"',
                                                lambda c: c.replication.consistency_timeout_s == 1.5),
    "hkp.host": ('"0.0.0.0"', lambda c: c.host == "0.0.0.0"),
    "hkp.port": ("11372", lambda c: c.http_port == 11372),
    "hkp.default_consistency": ('"quorum"', lambda c: c.default_consistency == "quorum"),
    "hkp.sync_writes": ("false", lambda c: c.sync_writes is False),
    "hkp.shutdown_timeout": ('"10s"', lambda c: c.shutdown_timeout_s == 10),
    "hkp.process_parse_bytes": ('"512KiB"', lambda c: c.process_parse_bytes == 512 * 1024),
    "hkp.parse_workers": ("2", lambda c: c.parse_workers == 2),
    "hkp.agent_check_port": ("11373", lambda c: c.agent_check_port == 11373),
    "hkp.drain_grace": ('"30s"', lambda c: c.drain_grace_s == 30),
    "hkp.load_interval": ('"500ms"', lambda c: c.load_interval_s == 0.5),
    "hkp.trusted_proxies": ('["10.0.0.0/8"]', lambda c: c.trusted_proxies == ("10.0.0.0/8",)),
    "hkp.tls_cert": ('"/etc/meshkp/tls.crt"', lambda c: str(c.tls_cert) == "/etc/meshkp/tls.crt"),
    "hkp.tls_key": ('"/etc/meshkp/tls.key"', lambda c: str(c.tls_key) == "/etc/meshkp/tls.key"),
    "hkp.admin_listen": ('"127.0.0.1:11372"', lambda c: c.admin_listen == "127.0.0.1:11372"),
    # Every timer is set below, so the profile shows in test_membership_timers_change_the_profile.
    "membership.profile": ('"local"', None),
    "cache.served_cache_bytes": ('"16MiB"', lambda c: c.served_cache_bytes == 16 << 20),
    "cache.term_cache_entries": ("1000", lambda c: c.term_cache_entries == 1000),
    "log.level": ('"debug"', lambda c: c.log_level == "DEBUG"),
    "log.access_log": ("false", lambda c: c.access_log is False),
    "log.access_log_file": ('"/var/log/meshkp/access.log"',
                            lambda c: c.access_log_file == Path("/var/log/meshkp/access.log")),
    "log.access_log_format": ('"combined"', lambda c: c.access_log_format == "combined"),
}


def _doubled(key_path: str, default: object) -> str:
    """A valid non-default TOML value for a generated key ([limits], SwimConfig timers)."""
    if isinstance(default, bool):
        return "false" if default else "true"
    if isinstance(default, float):
        return f'"{format_duration(default * 2)}"'
    if key_path == "membership.max_meta_bytes":
        return str(int(default) - 1)  # at most what peers accept
    return str(int(default) * 2)  # doubling every limit keeps their relations


def _generated() -> dict[str, tuple[str, object]]:
    limits, swim = Limits(), SwimConfig.local()
    generated = {}
    for field in dataclasses.fields(Limits):
        generated[f"limits.{field.name}"] = (getattr(limits, field.name), "limits", field.name)
    for field in dataclasses.fields(SwimConfig):
        generated[f"membership.{field.name}"] = (getattr(swim, field.name), "swim", field.name)
    return generated  # type: ignore[return-value]


def _full_file() -> str:
    sections: dict[str, list[str]] = {}
    for path, (value, _check) in EXPLICIT.items():
        section, _, name = path.rpartition(".")
        sections.setdefault(section, []).append(f"{name} = {value}")
    for path, (default, _section, _name) in _generated().items():  # type: ignore[misc]
        section, _, name = path.rpartition(".")
        sections.setdefault(section, []).append(f"{name} = {_doubled(path, default)}")
    return "\n".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


def test_every_key_lands_on_its_node_config_field() -> None:
    assert set(EXPLICIT) | set(_generated()) == {key.path for key in KEYS}  # a new key needs a row
    text = _full_file()
    resolved = load(text)
    config = resolved.config
    for path, (_value, check) in EXPLICIT.items():
        if check is not None:
            assert check(config), path
    assert config.membership is not None
    for path, (default, section, name) in _generated().items():  # type: ignore[misc]
        # The full file's value equals that of a file setting this key alone, and is not the default.
        value = _doubled(path, default)
        if section == "limits":
            alone, base = load(f"[limits]\n{name} = {value}\n").config.limits, Limits()
            got = config.limits
        else:
            mesh = '[cluster]\nenabled = true\n[membership]\nprofile = "local"\n'
            membership = load(f"{mesh}{name} = {value}\n").config.membership
            assert membership is not None
            alone, base, got = membership.swim, SwimConfig.local(), config.membership.swim
        assert getattr(got, name) == getattr(alone, name) != getattr(base, name), path
    assert resolved.consensus == {"algorithm": "raft", "heartbeat_timeout": 2.0,
                                  "election_timeout": 3.0, "commit_timeout": 0.02, "profile": "local",
                                  "snapshot_threshold": 64, "trailing_logs": 8}


def test_an_empty_file_gives_the_defaults() -> None:
    assert load("").config == NodeConfig()


def test_membership_timers_change_the_profile_they_name() -> None:
    config = load('[cluster]\nenabled = true\n[membership]\nprofile = "test"\n'
                  'probe_interval = "2s"\n').config
    assert config.membership is not None
    assert config.membership.swim == dataclasses.replace(SwimConfig.test(), probe_interval=2.0)


def test_mesh_keys_of_a_node_that_runs_alone_are_reported_unused() -> None:
    resolved = load('[cluster]\nenabled = false\n[cluster.discovery]\npeers = ["10.0.0.2:7946"]\n'
                    '[membership]\nprobe_interval = "2s"\n')
    assert resolved.config.membership is None
    assert [origin.label for origin in resolved.unused] == ["[cluster.discovery] peers",
                                                            "[membership] probe_interval"]


# (name, file text, line of the error, words the error must contain)
BROKEN = [
    ("syntax", '[hkp]\nport = = 1\n', 2, "TOML syntax: invalid value at column 8"),
    ("duplicate", '[hkp]\nport = 1\nhost = "::"\nport = 2\n', 4, "TOML syntax"),
    ("unknown key", '[hkp]\nhost = "::"\nprot = 11371\n', 3, "[hkp] prot: unknown key; did you mean port?"),
    ("unknown table", '# one\n[clutser]\nenabled = true\n', 2,
     "clutser: unknown table; did you mean cluster?"),
    ("wrong type", '[hkp]\nport = "eleven"\n', 2, '[hkp] port: expected an integer, got "eleven"'),
    ("bad duration", '[cluster.replication]\nbatch_size = 10\nsync_interval = "10 parsecs"\n', 3,
     "'10 parsecs' is not a duration with a unit"),
    ("bare number", '[cluster]\nenabled = true\n[cluster.consensus]\nheartbeat_timeout = 1\n', 4,
     'expected a duration with a unit, like "1s"'),
    ("out of range", '[hkp]\nport = 70000\n', 2, "[hkp] port: http_port must be 0..65535, got 70000"),
    ("relation", '[cluster]\nenabled = true\n\n[membership]\nprobe_timeout = "2s"\n', 5,
     "[membership] probe_timeout: probe_timeout (2.0s) must be shorter than probe_interval"),
    ("limits relation", '[limits]\nupload_bytes = "8MiB"\nkey_bytes = "16MiB"\n', 3,
     "[limits] key_bytes: limit key_bytes must not exceed upload_bytes"),
    ("compression", '[cluster.replication]\ncompression = "zstd"\n', 2,
     '[cluster.replication] compression: expected one of "none", "zlib", got "zstd": sync batches '
     "are sent as they are or zlib-compressed"),
    ("bad size", '[cache]\nserved_cache_bytes = "64 MeB"\n', 2, "'64 MeB' is not a size in bytes"),
    ("advertise hostname", '[cluster]\nenabled = true\nadvertise_address = "node1.example"\n', 3,
     "expected an IP address (peers dial it without DNS)"),
    ("line after a multi-line string", '[cluster]\nname = """\nx = 1\n"""\n[log]\nlevel = "loud"\n',
     6, '[log] level: expected one of'),
    ("consensus relation", '[cluster]\nenabled = true\n[cluster.consensus]\n'
     'heartbeat_timeout = "1s"\ncommit_timeout = "1s"\n', 5,
     "commit_timeout (1s) must be shorter than heartbeat_timeout (1s)"),
    ("bad node id", '[cluster]\nnode_id = "two words"\n', 2,
     "[cluster] node_id: node id 'two words' is invalid"),
    ("key file peers", '[cluster.replication]\n\npeers = ["127.0.0.1:7947"]\n', 3,
     "replication peers need the cluster key: pass --cluster-key-file ([cluster] key_file)"),
    ("a table as a value", 'cluster = 1\n', 1, "cluster: is a table"),
]


@pytest.mark.parametrize(("text", "line", "words"), [case[1:] for case in BROKEN],
                         ids=[case[0] for case in BROKEN])
def test_each_broken_file_gives_one_clear_error_on_its_line(text: str, line: int, words: str) -> None:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"bad.toml:{line}: "), errors[0]
    assert words in errors[0], errors[0]


def test_every_error_of_a_file_is_listed_in_line_order() -> None:
    text = ('[hkp]\nport = "x"\n'            # 2: wrong type
            '[limits]\nupload_bytes = 0\n'   # 4: out of range
            'key_bytes = "16MiB"\n'          # 5: a consequence of line 4: not repeated
            '[log]\nlevel = "loud"\n'        # 7: bad choice
            '[cache]\nsize = 1\n')           # 9: unknown key
    errors = errors_of(text)
    assert [int(e.split(":")[1]) for e in errors] == [2, 4, 7, 9], errors


def test_an_unreadable_file_is_one_error_naming_it(tmp_path: Path) -> None:
    layer, problems = read_config_file(tmp_path / "missing.toml")
    assert layer == {} and len(problems) == 1
    assert "missing.toml: cannot read the config file: No such file" in str(problems[0])


def test_consensus_keys_map_onto_the_control_config() -> None:
    text = ('[cluster]\nenabled = true\n[cluster.consensus]\nprofile = "local"\n'
            'heartbeat_timeout = "2s"\nelection_timeout = "3s"\ncommit_timeout = "20ms"\n')
    control = load(text).config.control
    assert control.election_timeout_min == 2.0 and control.election_timeout_max == 6.0
    assert control.heartbeat_interval == 0.02
    assert control.lease_duration == 1.6 and control.max_clock_drift == 0.2
    assert control.learner_stable_time == ControlConfig.local().learner_stable_time  # the profile's
    control.validate()
