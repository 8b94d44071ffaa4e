"""Snapshot bootstrap between real `meshkp serve` processes (meshkp/replication/snapshot.py).

A new node copies a peer's LevelDB rows over the encrypted replication transport, says it is
bootstrapping meanwhile, resumes after kill -9 from the cursor in its store; and a peer that
holds the cluster key but sends garbage gets every bad row refused and counted, while the node
stays up and stores only what passed.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import msgpack

from bench.keygen import generate_key
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import load_keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpTransport
from meshkp.net.wire import TCP_FRAME_BYTES, Frame
from meshkp.replication.messages import (
    SNAPSHOT_INDEX,
    SNAPSHOT_RECORDS,
    SnapshotPage,
    SnapshotRead,
    SyncError,
    decode_message,
)
from meshkp.store import layout
from meshkp.store.protocol import IndexKind
from tests.integration.replication_mesh import Mesh, build_store, wait_until
from tests.ports import free_port
from tests.unit.replication.helpers import record


def _small_pages(root: Path) -> Path:
    """A config making snapshot pages small (64 KiB), so a copy of a few thousand keys takes
    many pages: long enough to watch, and to interrupt."""
    path = root / "small-pages.toml"
    path.write_text('[cluster.replication]\nbatch_bytes = "64KiB"\n')
    return path


def test_a_new_node_copies_says_it_is_bootstrapping_and_resumes_after_kill_9(tmp_path: Path) -> None:
    count = 4000
    (tmp_path / "n0").mkdir()
    build_store(tmp_path / "n0", count)
    mesh = Mesh.start(tmp_path, 1, "--sync-interval", "1")
    try:
        want = mesh.status(mesh[0])
        assert want["keys"] == count
        mesh.sync_ports.append(free_port())
        mesh.nodes.append(None)
        config = _small_pages(tmp_path)
        new = mesh.start_node(1, "--config", str(config))
        seen: list[dict] = []

        def copying() -> bool:
            reply = new.request("GET", "/cluster/health")
            body = json.loads(reply.body)
            if reply.status == 200 and body["bootstrapping"] and body["bootstrapping"]["records"]:
                assert reply.headers["x-meshkp-bootstrapping"] == body["bootstrapping"]["phase"]
                seen.append(body["bootstrapping"])
                return True
            return False

        wait_until(copying, 60, "the new node to say it is copying", step=0.01)
        # It serves reads of what it has meanwhile.
        assert new.lookup(op="get", search="user0@example.org").status in (200, 404)
        new.proc.kill()  # kill -9 mid-copy
        new.proc.wait(10)
        mesh.nodes[1] = None
        new = mesh.start_node(1, "--config", str(config))
        wait_until(lambda: mesh.status(new)["merkle_root"] == want["merkle_root"], 90,
                   "the restarted node to reach the source's root", step=0.2)
        status = mesh.status(new)
        assert status["keys"] == count and status["bootstrap"] is None
        log = (tmp_path / "n1-server.log").read_text()
        assert "event=bootstrap_started" in log and "resumed=True" in log, log[-2000:]
        assert "event=bootstrap_done" in log
        # The index came along: lookups by e-mail and by key ID answer on the new node.
        key = generate_key(1234, seed=b"boot")
        assert new.lookup(op="get", search="user1234@example.org").status == 200
        assert new.lookup(op="get", search="0x" + key.fingerprint.hex()).status == 200
        assert json.loads(new.request("GET", "/cluster/status").body)["bootstrapping"] is None
    finally:
        mesh.close()


class GarbagePeer:
    """A replication listener holding the cluster key that answers snapshot reads with garbage."""

    def __init__(self, key_file: Path, port: int) -> None:
        self.key_file = key_file
        self.port = port
        self.reads = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> GarbagePeer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _serve(self) -> None:
        codec = SealedCodec(load_keyring(self.key_file), TCP_FRAME_BYTES + 4096,
                            auth=FrameAuth(NodeIdentity.generate()))
        server = TcpTransport(("127.0.0.1", self.port), codec, self._answer, NetStats())
        await server.start()
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop()

    async def _answer(self, _addr: tuple[str, int], frame: Frame) -> Frame | None:
        message = decode_message(frame.type, frame.body)
        if isinstance(message, SnapshotRead) and message.part == SNAPSHOT_RECORDS:
            self.reads += 1
            reply = SnapshotPage(SNAPSHOT_RECORDS, tuple(sorted(GARBAGE_RECORDS + [GOOD])), b"", 9)
        elif isinstance(message, SnapshotRead):
            self.reads += 1
            reply = SnapshotPage(SNAPSHOT_INDEX, tuple(sorted(GARBAGE_ENTRIES + [GOOD_ENTRY])), b"", 9)
        else:  # the Merkle diff that follows the copy
            reply = SyncError("this peer only sends garbage")
        return Frame(reply.TYPE, reply.to_map())


GOOD = record(1).encode()
_GOOD_FIELDS = msgpack.unpackb(GOOD)
GOOD_FPR = _GOOD_FIELDS[1]
GOOD_ENTRY = layout.index_entry(IndexKind.FINGERPRINT, GOOD_FPR, GOOD_FPR)
GARBAGE_RECORDS = [
    os.urandom(200),  # not msgpack
    msgpack.packb([1, record(2).fingerprint, _GOOD_FIELDS[2], {"n0": 1}, None]),  # key 1 filed as 2
    msgpack.packb([1, _GOOD_FIELDS[1], _GOOD_FIELDS[2][:-7], {"n0": 1}, None]),  # truncated packets
    msgpack.packb([1, _GOOD_FIELDS[1], _GOOD_FIELDS[2], {"n0": 2**64 - 1}, None]),  # vv overflow
    msgpack.packb([7, b"x" * 20, None, {}, None]),  # unknown format
]
GARBAGE_ENTRIES = [b"Q\x00\x03abc" + GOOD_FPR, b"w\x00\x09abc" + GOOD_FPR, b"w\x00\x00" + GOOD_FPR]


def test_a_peer_sending_garbage_is_refused_row_by_row_and_the_node_stays_up(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, tmp_path / "cluster.key", [free_port()])
    from meshkp.net.crypto import generate_key as generate_cluster_key
    from meshkp.net.crypto import write_key_file

    write_key_file(mesh.key_file, [generate_cluster_key()], overwrite=True)
    port = free_port()
    mesh.nodes = [None]
    with GarbagePeer(mesh.key_file, port) as peer:
        try:
            node = mesh.start_node(0, f"--replication-peer=127.0.0.1:{port}", "--sync-interval", "1")
            refused = len(GARBAGE_RECORDS) + len(GARBAGE_ENTRIES)
            wait_until(lambda: mesh.status(node)["counters"]["records_rejected"] >= refused, 60,
                       "the garbage rows to be refused")
            time.sleep(0.5)  # the round's Merkle rebuild and failed diff
            status = mesh.status(node)
            assert status["counters"]["records_rejected"] == refused  # one copy: it holds a key now
            assert peer.reads >= 2
            assert node.request("GET", "/cluster/health").status == 200  # it stays up
            # Only the sound record was stored; its lookups work; nothing garbage is held.
            assert status["records"] == 1 and status["keys"] == 1
            assert node.lookup(op="get", search="0x" + GOOD_FPR.hex()).status == 200
            assert node.lookup(op="get", search="0x" + record(2).fingerprint.hex()).status == 404
            assert "event=bootstrap_rows_refused" in (tmp_path / "n0-server.log").read_text()
            metrics = node.request("GET", "/metrics").body.decode()
            assert f"meshkp_replication_records_rejected_total {float(refused)}" in metrics
            assert "meshkp_replication_bootstrapping 0.0" in metrics
        finally:
            mesh.close()
