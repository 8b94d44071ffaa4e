"""`meshkp lb-config`'s member selection and its two renderings, each checked by the balancer
itself (`haproxy -c`, `nginx -t`) when the Debian package is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli import lb_config as lb
from cli.lb_templates import Backend, render_haproxy, render_nginx, server_name

MEMBERS = {"self": "b", "nodes": [
    {"id": "c", "http": "10.0.0.3:11371", "status": "dead", "meta": {}},
    {"id": "a", "http": "10.0.0.1:11371", "status": "alive", "meta": {}},
    {"id": "b", "http": "[2001:db8::2]:11371", "status": "suspect", "meta": {}},
    {"id": "gone", "http": "10.0.0.4:11371", "status": "left", "meta": {}},
    {"id": "mute", "http": "", "status": "alive", "meta": {}},
    {"id": "starting", "http": "10.0.0.6:0", "status": "alive", "meta": {}},
]}
BACKENDS = [Backend("a", "10.0.0.1:11371"), Backend("b", "[2001:db8::2]:11371"),
            Backend("c", "10.0.0.3:11371")]


def test_members_that_left_or_have_no_address_are_left_out() -> None:
    assert lb.backends_of(MEMBERS) == BACKENDS  # dead ones stay: the health check handles them


def test_a_reply_that_is_no_member_list_is_an_error() -> None:
    with pytest.raises(click.ClickException, match="member list"):
        lb.backends_of("<html>not meshkp</html>")


def test_server_names_are_safe() -> None:
    assert server_name("node-1.eu_west") == "node-1.eu_west"
    assert server_name("a b#c") == "a_b_c"


def test_haproxy_config_checks_every_node_on_cluster_health() -> None:
    text = render_haproxy(BACKENDS, "*:11371", 2000)
    assert "option httpchk GET /cluster/health" in text
    assert "    default-server check inter 2000ms fall 2 rise 2 weight 100\n" in text
    assert not [line for line in text.splitlines()
                if "agent-check" in line and not line.lstrip().startswith("#")]
    assert [line.split()[1:] for line in text.splitlines() if line.startswith("    server ")] == [
        [b.name, b.address] for b in BACKENDS]


def test_a_node_with_an_agent_port_gets_an_agent_check() -> None:
    members = {"nodes": [
        {"id": "a", "http": "10.0.0.1:11371", "status": "alive", "meta": {"agent": "11372"}},
        {"id": "b", "http": "10.0.0.2:11371", "status": "alive", "meta": {"agent": "junk"}},
        {"id": "c", "http": "10.0.0.3:11371", "status": "alive", "meta": {}},
    ]}
    assert [b.agent_port for b in lb.backends_of(members)] == [11372, None, None]
    backends = lb.backends_of(members, agent_port=9777)
    assert [b.agent_port for b in backends] == [11372, 9777, 9777]
    servers = [line for line in render_haproxy(backends, "*:11371", 500).splitlines()
               if line.startswith("    server ")]
    assert servers[0] == ("    server a 10.0.0.1:11371 agent-check agent-port 11372 "
                          "agent-inter 500ms")
    assert servers[2].endswith("agent-port 9777 agent-inter 500ms")


def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.skip("haproxy is not installed (Debian package haproxy: make apt)")
    path = tmp_path / "haproxy.cfg"
    with_agent = [*BACKENDS, Backend("d", "10.0.0.4:11371", 11372)]
    path.write_text(render_haproxy(with_agent, "127.0.0.1:18080", 500))
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = shutil.which("nginx")
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx-light)")
    (tmp_path / "meshkp.conf").write_text(render_nginx(BACKENDS, "127.0.0.1:18080"))
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                    f"http {{\n access_log off;\n include {tmp_path}/meshkp.conf;\n}}\n")
    result = subprocess.run([binary, "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def fake_call(status: int, reply: Any) -> Any:
    return lambda node_url, method, path, *args: (status, reply)


def test_a_server_without_the_endpoint_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lb, "call", fake_call(404, "Not Found"))
    result = CliRunner().invoke(lb.lb_config, ["haproxy", "--node", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "has no /cluster/nodes (404): give the HKP address of a meshkp node" in result.output
    assert "Traceback" not in result.output


def test_the_file_is_written_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lb, "call", fake_call(200, MEMBERS))
    out = tmp_path / "meshkp.conf"
    out.write_text("old")
    result = CliRunner().invoke(lb.lb_config, ["nginx", "--out", str(out), "--bind", "*:80"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == render_nginx(BACKENDS, "80")
    assert [p.name for p in tmp_path.iterdir()] == ["meshkp.conf"]  # no temp file left
