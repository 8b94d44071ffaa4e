"""The access log: queued on the loop, written by a thread, nothing lost on stop, bounded,
reopened on SIGHUP, in the kv / Common / Combined formats; and a real node writing it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from meshkp.errors import ConfigError
from meshkp.http.access_log import (
    AccessLogConfig,
    AccessLogSink,
    Entry,
    format_combined,
    format_common,
    format_kv,
)
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node

ENTRY: Entry = (1_700_000_000.25, "127.0.0.1", "GET", "/pks/lookup", "get", 200, 1234, 0.0015,
                "", "GnuPG/2.2 \"quoted\"\nnext")


def test_kv_line_has_the_request_facts_and_no_query() -> None:
    line = format_kv(ENTRY)
    assert line.endswith("\n") and line.count("\n") == 1
    assert ("event=http remote=127.0.0.1 method=GET path=/pks/lookup op=get status=200 "
            "bytes=1234 ms=1.50") in line


def test_common_and_combined_formats() -> None:
    common = format_common(ENTRY)
    assert common.startswith('127.0.0.1 - - [')
    assert '] "GET /pks/lookup HTTP/1.1" 200 1234\n' in common
    combined = format_combined(ENTRY)
    # Client-supplied fields cannot break the line or its quoting.
    assert combined.endswith(' "-" "GnuPG/2.2%20%22quoted%22\\nnext"\n')
    assert combined.count("\n") == 1


def test_nothing_is_lost_on_a_clean_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = AccessLogSink(AccessLogConfig(path=path, flush_interval_s=1.0))
    sink.start()
    for i in range(5000):
        sink.submit((*ENTRY[:5], 200 + i % 2, i, *ENTRY[7:]))  # type: ignore[arg-type]
    sink.close()  # long before the writer's next flush interval
    lines = path.read_text().splitlines()
    assert len(lines) == 5000 and sink.written == 5000 and sink.dropped == 0
    assert lines[-1].split("bytes=")[1].startswith("4999 ")


def test_lines_reach_the_file_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = AccessLogSink(AccessLogConfig(path=path, flush_interval_s=0.05))
    sink.start()
    try:
        sink.submit(ENTRY)
        deadline = time.monotonic() + 5
        while not path.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.read_text().count("\n") == 1
    finally:
        sink.close()


def test_overload_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    sink = AccessLogSink(AccessLogConfig(path=tmp_path / "a.log", max_pending=10))
    # Not started: nothing drains, as with a writer that cannot keep up.
    for _ in range(25):
        sink.submit(ENTRY)
    assert sink.dropped == 15
    sink.start()
    sink.close()
    assert sink.written == 10


def test_reopen_follows_logrotate(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = AccessLogSink(AccessLogConfig(path=path, flush_interval_s=0.05))
    sink.start()
    try:
        sink.submit(ENTRY)
        _wait_for(lambda: path.exists() and path.read_text().count("\n") == 1)
        path.rename(tmp_path / "access.log.1")  # logrotate moves the file away...
        sink.reopen()  # ...and signals the process
        _wait_for(path.exists)
        sink.submit(ENTRY)
        _wait_for(lambda: path.read_text().count("\n") == 1)
    finally:
        sink.close()
    assert (tmp_path / "access.log.1").read_text().count("\n") == 1


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format"):
        AccessLogConfig(format="apache").validate()
    sink = AccessLogSink(AccessLogConfig(path=tmp_path / "missing-dir" / "a.log"))
    with pytest.raises(ConfigError, match="cannot open the access log"):
        sink.start()


async def test_a_node_logs_each_request_to_its_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    node = Node(NodeConfig(data_dir=tmp_path / "n", http_port=0, access_log_file=path,
                           access_log_format="combined"))
    await node.start()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(node.url + "/pks/lookup?op=get&search=nobody%40example.org",
                                       headers={"User-Agent": "test-agent"}) as reply:
                    assert reply.status == 404
    finally:
        await node.stop()  # drains the queue
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert all('"GET /pks/lookup HTTP/1.1" 404' in line and '"test-agent"' in line for line in lines)
    assert "nobody" not in path.read_text()  # the query (an e-mail address) is never logged


def test_sighup_reopens_the_file_of_a_running_server(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--data-dir", str(tmp_path / "n"),
         "--http-port", "0", "--access-log-file", str(path), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ")[1].split()[0]
        _get(url + "/pks/health")
        _wait_for(lambda: path.exists() and "/pks/health" in path.read_text())
        path.rename(tmp_path / "rotated.log")
        os.kill(proc.pid, signal.SIGHUP)
        _wait_for(path.exists)
        _get(url + "/pks/health")
        _wait_for(lambda: "/pks/health" in path.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "rotated.log").read_text().count("\n") == 1


def _get(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as reply:
        reply.read()


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def test_kv_lines_carry_the_handlers_op_label_and_no_client_agent(tmp_path: Path) -> None:
    # The op comes from the handler's label, not from re-parsing the query: a client's odd
    # op is logged as "other"; kv lines never read the user agent (combined ones do, above).
    path = tmp_path / "access.log"
    node = Node(NodeConfig(data_dir=tmp_path / "n", http_port=0, access_log_file=path))
    await node.start()
    try:
        async with aiohttp.ClientSession() as session:
            for op in ("GET", "x%20y%0Aevent=forged"):
                async with session.get(f"{node.url}/pks/lookup?op={op}&search=0x1234567890ABCDEF",
                                       headers={"User-Agent": "test-agent"}) as reply:
                    assert reply.status in (404, 501)
    finally:
        await node.stop()
    lines = path.read_text().splitlines()
    assert [line.split(" op=")[1].split()[0] for line in lines] == ["get", "other"]
    assert "test-agent" not in path.read_text() and "forged" not in path.read_text()


async def test_a_forwarded_client_is_logged_not_its_trusted_proxy(tmp_path: Path) -> None:
    # Behind the operator's load balancer, the access log names the client it forwarded;
    # a client's own X-Forwarded-For, from an untrusted address, is not believed.
    lines = {}
    for trusted in (("127.0.0.1/32",), ()):
        path = tmp_path / f"access-{len(trusted)}.log"
        node = Node(NodeConfig(data_dir=tmp_path / f"n{len(trusted)}", http_port=0,
                               access_log_file=path, trusted_proxies=trusted))
        await node.start()
        try:
            async with aiohttp.ClientSession() as session:
                for client in ("198.51.100.7", "203.0.113.9"):  # one keep-alive connection
                    async with session.get(node.url + "/pks/health",
                                           headers={"X-Forwarded-For": client}) as reply:
                        assert reply.status == 200
        finally:
            await node.stop()
        lines[trusted] = [line.split(" remote=")[1].split()[0]
                          for line in path.read_text().splitlines()]
    assert lines[("127.0.0.1/32",)] == ["198.51.100.7", "203.0.113.9"]
    assert lines[()] == ["127.0.0.1", "127.0.0.1"]
