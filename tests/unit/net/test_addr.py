"""Peer addresses: the one HOST:PORT parser and its two modes (default port, port required)."""

import pytest

from meshkp.errors import ConfigError
from meshkp.net.addr import format_addr, is_ip_literal, parse_hostport


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("10.0.0.1:7000", ("10.0.0.1", 7000)),
        ("10.0.0.1", ("10.0.0.1", 7946)),
        ("node-a.example:1", ("node-a.example", 1)),
        ("[::1]:7000", ("::1", 7000)),
        ("[fe80::1]", ("fe80::1", 7946)),
        ("fe80::1", ("fe80::1", 7946)),
        (" host:80 ", ("host", 80)),
    ],
)
def test_parse_hostport(spec: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(spec) == expected
    assert parse_hostport(format_addr(expected)) == expected


@pytest.mark.parametrize("spec", ["", ":80", "host:0", "host:65536", "host:x", "[::1", "[::1]x"])
def test_parse_hostport_rejects(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_hostport(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("10.0.0.1:7947", ("10.0.0.1", 7947)), ("[::1]:7947", ("::1", 7947)), ("h:1", ("h", 1))],
)
def test_a_required_port_is_parsed_like_any_other(spec: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(spec, default_port=None) == expected


@pytest.mark.parametrize("spec", ["10.0.0.1", "[::1]", "fe80::1", "host:", "", "host:x"])
def test_without_a_default_port_a_spec_without_one_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="peer address|port"):
        parse_hostport(spec, default_port=None)


def test_ip_literals_are_told_from_host_names() -> None:
    assert is_ip_literal("10.0.0.1") and is_ip_literal("::1")
    assert not is_ip_literal("localhost") and not is_ip_literal("10.0.0.1:80")
