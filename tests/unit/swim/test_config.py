"""SwimConfig profiles carry memberlist's values; validate() rejects bad values and relations."""

import dataclasses

import pytest

from meshkp.errors import ConfigError
from meshkp.swim.config import SwimConfig


def test_lan_profile_is_memberlist_default_lan_config() -> None:
    c = SwimConfig.lan()
    assert (c.probe_interval, c.probe_timeout, c.indirect_checks) == (1.0, 0.5, 3)
    assert (c.suspicion_mult, c.suspicion_max_timeout_mult, c.retransmit_mult) == (4, 6, 4)
    assert (c.gossip_interval, c.gossip_nodes, c.gossip_to_the_dead_time) == (0.2, 3, 30.0)
    assert (c.push_pull_interval, c.awareness_max_multiplier) == (30.0, 8)
    assert (c.udp_frame_bytes, c.tcp_timeout) == (1400, 10.0)


def test_local_profile_is_memberlist_default_local_config() -> None:
    c = SwimConfig.local()
    assert (c.indirect_checks, c.retransmit_mult, c.suspicion_mult) == (1, 2, 3)
    assert (c.push_pull_interval, c.probe_timeout, c.probe_interval) == (15.0, 0.2, 1.0)
    assert (c.gossip_interval, c.gossip_to_the_dead_time, c.tcp_timeout) == (0.1, 15.0, 1.0)


@pytest.mark.parametrize("profile", [SwimConfig.lan, SwimConfig.local, SwimConfig.test])
def test_profiles_validate(profile: object) -> None:
    config = profile()  # type: ignore[operator]
    assert config.validate() is config


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SwimConfig.lan().probe_interval = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"probe_interval": 0}, "probe_interval"),
        ({"probe_timeout": -1.0}, "probe_timeout"),
        ({"gossip_interval": "fast"}, "gossip_interval"),
        ({"push_pull_interval": -5.0}, "push_pull_interval"),
        ({"suspicion_mult": 0}, "suspicion_mult"),
        ({"gossip_nodes": True}, "gossip_nodes"),
        ({"indirect_checks": -1}, "indirect_checks"),
        ({"probe_timeout": 1.0}, "shorter than probe_interval"),
        ({"udp_frame_bytes": 200}, "udp_frame_bytes"),
        ({"dead_node_forget_time": 10.0}, "dead_node_forget_time"),
        ({"max_meta_bytes": 1000}, "max_meta_bytes"),
    ],
)
def test_validate_names_the_problem(change: dict[str, object], mentions: str) -> None:
    bad = dataclasses.replace(SwimConfig.lan(), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=mentions):
        bad.validate()


def test_zero_disables_push_pull_and_reconnect() -> None:
    c = dataclasses.replace(SwimConfig.lan(), push_pull_interval=0.0, reconnect_interval=0.0)
    assert c.validate() is c
