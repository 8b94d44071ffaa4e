"""The key table: one key per config field it claims, a MESHKP_* name per key by one rule, and
the environment read through the same kinds as the file."""

from __future__ import annotations

import dataclasses

import pytest

from meshkp.errors import InvalidSettings
from meshkp.limits import Limits
from meshkp.node.settings.build import MESH_ONLY, build, resolve
from meshkp.node.settings.environment import read_environment
from meshkp.node.settings.keys import KEYS, KEYS_BY_ENV, SECTIONS
from meshkp.swim.config import SwimConfig


def test_limits_and_membership_hold_every_field_of_their_dataclass() -> None:
    paths = {key.path for key in KEYS}
    assert {f"limits.{f.name}" for f in dataclasses.fields(Limits)} <= paths
    assert {f"membership.{f.name}" for f in dataclasses.fields(SwimConfig)} <= paths
    assert {"cluster", "cluster.consensus", "cluster.discovery", "cluster.replication", "hkp",
            "limits", "membership", "cache", "log"} == set(SECTIONS)


def test_environment_names_follow_one_rule_and_are_unique() -> None:
    assert len(KEYS_BY_ENV) == len(KEYS)
    by_path = {key.path: key.env for key in KEYS}
    assert by_path["hkp.port"] == "MESHKP_HKP_PORT"
    assert by_path["cluster.enabled"] == "MESHKP_CLUSTER_ENABLED"
    assert by_path["cluster.discovery.peers"] == "MESHKP_CLUSTER_DISCOVERY_PEERS"
    for key in KEYS:
        assert key.env == "MESHKP_" + key.path.replace(".", "_").upper()


def test_mesh_only_keys_are_exactly_those_setting_mesh_fields() -> None:
    for key in KEYS:
        assert key.mesh_only == all(t.startswith(MESH_ONLY) for t in key.targets), key.path


def test_every_key_target_is_a_field_the_builder_knows() -> None:
    # A key whose target names no field would fail NodeConfig(**...) with a TypeError.
    for key in KEYS:
        if key.path.startswith("cluster.consensus"):
            continue  # not NodeConfig fields (consensus waits for the control plane)
        text = {"cluster.advertise_address": "10.0.0.1", "cluster.bind_address": "10.0.0.1:7000"}
        layer, problems = read_environment({key.env: text.get(key.path, _sample(key.kind.label))})
        assert problems == [], (key.path, problems)
        mesh, _ = read_environment({"MESHKP_CLUSTER_ENABLED": "true"})
        build({**mesh, **layer})


def _sample(label: str) -> str:
    if label.startswith("true or false"):
        return "true"
    if "duration" in label:
        return "2s"
    if "array" in label:
        return "10.0.0.2:7946"
    if label.startswith("one of"):
        return label.split('"')[1]
    if "path" in label or "string" in label:
        return "x1"
    return "3"


def test_environment_values_are_read_like_the_file() -> None:
    layer, problems = read_environment({
        "MESHKP_CLUSTER_ENABLED": "yes",
        "MESHKP_CLUSTER_DISCOVERY_PEERS": "10.0.0.2:7946, 10.0.0.3:7946,",
        "MESHKP_CLUSTER_REPLICATION_SYNC_INTERVAL": "30s",
        "MESHKP_CACHE_SERVED_CACHE_BYTES": "16MiB",
        "MESHKP_LOG_LEVEL": "debug",
        "MESHKP_ADMIN_TOKEN": "not a config key, and not under a config section",
        "MESHKP_LOOP_BLOCK_LIMIT_S": "0.1",
    })
    assert problems == []
    config = resolve(layer).config
    assert config.membership is not None
    assert config.membership.join == ("10.0.0.2:7946", "10.0.0.3:7946")
    assert config.replication.sync_interval_s == 30.0
    assert config.served_cache_bytes == 16 << 20 and config.log_level == "DEBUG"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("MESHKP_HKP_PROT", "1", "names no config key; did you mean MESHKP_HKP_PORT?"),
    ("MESHKP_HKP_PORT", "eleven", 'expected an integer, got "eleven" ([hkp] port of the config file)'),
    ("MESHKP_CLUSTER_ENABLED", "maybe", "expected true or false"),
    ("MESHKP_CLUSTER_REPLICATION_SYNC_INTERVAL", "30", "not a duration with a unit"),
])
def test_bad_environment_values_name_the_variable(name: str, value: str, words: str) -> None:
    layer, problems = read_environment({name: value})
    with pytest.raises(InvalidSettings) as caught:
        resolve(layer, problems)
    (error,) = caught.value.errors
    assert error.startswith(f"environment: {name}: ") and words in error, error


def test_an_environment_value_out_of_range_names_the_variable_and_its_flag() -> None:
    layer, problems = read_environment({"MESHKP_CLUSTER_REPLICATION_PEERS": "127.0.0.1:7947"})
    with pytest.raises(InvalidSettings) as caught:
        resolve(layer, problems)
    (error,) = caught.value.errors
    assert error.startswith("environment: MESHKP_CLUSTER_REPLICATION_PEERS: ")
    assert "--cluster-key-file (MESHKP_CLUSTER_KEY_FILE)" in error
