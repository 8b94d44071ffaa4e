"""Group commit on a real node: uploads one at a time never wait for the commit window and
cost one fsync each; concurrent uploads share fsyncs. Read from the node's /metrics
(meshkp_store_*), never from timings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.keygen import generate_key
from meshkp.openpgp.armor import armor
from tests.integration.conftest import ServerProcess, start_server

CLIENTS = 8
PER_CLIENT = 12


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "node")
    try:
        yield server
    finally:
        server.stop()
        server.assert_no_bugs()


def store_counters(node: ServerProcess) -> dict[str, float]:
    reply = node.request("GET", "/metrics")
    assert reply.status == 200
    found = {}
    for line in reply.text.splitlines():
        if line.startswith("meshkp_store_"):
            name, value = line.split()
            found[name] = float(value)
    return found


def keys(count: int, seed: bytes) -> list[str]:
    return [armor(generate_key(n, seed=seed).data) for n in range(count)]


@pytest.mark.integration
def test_uploads_one_at_a_time_commit_at_once_with_one_fsync_each(node: ServerProcess) -> None:
    before = store_counters(node)
    for key in keys(10, b"lone"):
        assert node.add(key).status == 200
    after = store_counters(node)
    fsyncs = after["meshkp_store_synced_commits_total"] - before["meshkp_store_synced_commits_total"]
    assert fsyncs == 10
    assert after["meshkp_store_window_waits_total"] == before["meshkp_store_window_waits_total"]
    assert node.key_count() == 10


@pytest.mark.integration
def test_concurrent_uploads_share_fsyncs(node: ServerProcess) -> None:
    work = keys(CLIENTS * PER_CLIENT, b"together")
    statuses: list[int] = []
    lock = threading.Lock()

    def client(first: int) -> None:
        for key in work[first::CLIENTS]:
            status = node.add(key).status
            with lock:
                statuses.append(status)

    before = store_counters(node)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = store_counters(node)
    assert statuses == [200] * len(work)
    fsyncs = after["meshkp_store_synced_commits_total"] - before["meshkp_store_synced_commits_total"]
    jobs = after["meshkp_store_write_jobs_total"] - before["meshkp_store_write_jobs_total"]
    assert jobs >= len(work)
    # With 8 clients waiting on the writer, groups form; one fsync per upload would mean none.
    assert fsyncs < len(work), (fsyncs, after)
    assert after["meshkp_store_largest_group"] > 1
    assert node.key_count() == len(work)
