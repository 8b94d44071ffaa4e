"""Replication between real `meshkp serve` processes on 127.0.0.1 (issue 5, checks 1-7).

Each mesh uses static replication peers (--replication-peer) over the encrypted TCP transport and a
short sync interval; peers found through gossip membership are tested in
test_replication_membership.py, upload bodies with replication on in test_replication_add_body.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.errors import PeerUnreachable, WireError
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key, load_keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpTransport
from meshkp.net.wire import Frame
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import PushBatch, SyncError, decode_message
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.integration.replication_mesh import (
    Mesh,
    armored,
    build_store,
    fingerprint,
    wait_until,
    with_user_id,
)
from tests.ports import free_port
from tests.unit.replication.helpers import record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mesh5(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh.start(tmp_path_factory.mktemp("mesh5"), 5, "--sync-interval", "1")
    try:
        yield mesh
    finally:
        mesh.close()
        for node_dir in sorted(mesh.root.glob("*-server.log")):
            assert "event=http_bug" not in node_dir.read_text(errors="replace"), node_dir


def _all_serve(mesh: Mesh, fprs: list[str]) -> bool:
    return all(mesh.has_key(node, f) for node in mesh.live() for f in fprs)


def test_1_keys_uploaded_anywhere_reach_every_node(mesh5: Mesh) -> None:
    fprs = []
    for i in range(10):
        response = mesh5[i % 5].add(armored(100 + i))
        assert response.status == 200, response.text
        fprs.append(fingerprint(100 + i))
    if GPG is not None:  # one more, sent by GnuPG itself over hkp://
        with gnupg_home() as home:
            (home / "k.asc").write_text(armored(150))
            gpg(home, "--import", str(home / "k.asc"))
            sent = gpg(home, "--keyserver", mesh5[2].hkp, "--send-keys", fingerprint(150))
            assert sent.returncode == 0, sent.stderr
        fprs.append(fingerprint(150))
    wait_until(lambda: _all_serve(mesh5, fprs), 20, "every node to serve every key")
    wait_until(lambda: len(mesh5.roots()) == 1, 10, "equal merkle roots")
    assert mesh5.status(mesh5[4])["keys"] >= len(fprs)


def test_2_concurrent_updates_converge_to_the_union(mesh5: Mesh) -> None:
    assert mesh5[0].add(armored(200, with_subkey=False)).status == 200
    fpr = fingerprint(200)
    wait_until(lambda: _all_serve(mesh5, [fpr]), 10, "the base key everywhere")
    replies: dict[int, int] = {}

    def upload(node: int, uid: str) -> None:
        replies[node] = mesh5[node].add(with_user_id(200, uid)).status

    threads = [threading.Thread(target=upload, args=(1, "Alice <alice@example.org>")),
               threading.Thread(target=upload, args=(3, "Bob <bob@example.org>"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert replies == {1: 200, 3: 200}

    def merged_everywhere() -> bool:
        for node in mesh5.live():
            index = node.lookup(op="index", search="0x" + fpr, options="mr")
            if index.status != 200 or "alice@" not in index.text or "bob@" not in index.text:
                return False
        return True

    wait_until(merged_everywhere, 20, "both user IDs on every node")
    wait_until(lambda: len(mesh5.roots()) == 1, 10, "equal merkle roots")


def test_6_quorum_and_all_give_read_your_writes(mesh5: Mesh) -> None:
    fpr = fingerprint(300)
    reply = mesh5[1].add(armored(300), headers={"X-Consistency": "quorum"})
    assert reply.status == 200 and reply.headers["x-consistency-acks"].startswith(("3/", "4/", "5/"))
    assert sum(mesh5.has_key(node, fpr) for node in mesh5.live()) >= 3  # read right after reply
    fpr = fingerprint(301)
    reply = mesh5[2].add(armored(301), **{"x-consistency": "all"})
    assert reply.status == 200, reply.text
    assert all(mesh5.has_key(node, fpr) for node in mesh5.live())
    bad = mesh5[2].add(armored(302), headers={"X-Consistency": "most"})
    assert bad.status == 400


def test_5_deletes_stay_deleted_and_concurrent_uploads_conflict(mesh5: Mesh) -> None:
    stays, disputed = fingerprint(400), fingerprint(401)
    assert mesh5[0].add(armored(400)).status == 200
    assert mesh5[0].add(armored(401, with_subkey=False)).status == 200
    wait_until(lambda: _all_serve(mesh5, [stays, disputed]), 10, "the keys everywhere")
    mesh5.stop_node(4)  # stale node: holds both keys, misses both deletes
    assert mesh5.delete(0, stays, "court order", "alice")["changed"]
    assert mesh5.delete(0, disputed, "spam", "alice")["changed"]
    wait_until(lambda: not any(mesh5.has_key(n, f) for n in mesh5.live() for f in (stays, disputed)),
               10, "the deleted keys to vanish from every node")
    refused = mesh5[1].add(armored(400))
    assert refused.status == 400 and "deleted by alice" in refused.text
    # Node 4 comes back isolated and takes an update of `disputed` that never saw the delete.
    node4 = mesh5.start_node(4, "--sync-interval", "3600", peers_on=False)
    time.sleep(2.5)  # two of the others' sync intervals: none of them may reach node 4
    assert mesh5.has_key(node4, stays), "node 4 is not isolated: a peer's sync reached it"
    assert node4.add(with_user_id(401, "Carol <carol@example.org>")).status == 200
    mesh5.stop_node(4)
    mesh5.start_node(4)  # rejoins the mesh: its stale copy must not resurrect `stays`

    def settled() -> bool:
        if any(mesh5.has_key(n, f) for n in mesh5.live() for f in (stays, disputed)):
            return False
        for node in mesh5.live():
            listed = json.loads(node.request("GET", "/cluster/conflicts").body)["conflicts"]
            if [c["fingerprint"] for c in listed] != [disputed]:
                return False
        return len(mesh5.roots()) == 1

    wait_until(settled, 20, "deletes to hold and the conflict to reach every node")
    conflict = json.loads(mesh5[2].request("GET", "/cluster/conflicts").body)["conflicts"][0]
    assert conflict["delete"]["actor"] == "alice" and conflict["concurrent_adds"] == {"n4": 1}
    assert mesh5.status(mesh5[3])["tombstones"] >= 2
    unauthorized = mesh5[0].request("DELETE", f"/cluster/keys/{stays}?reason=x")
    assert unauthorized.status == 401


def test_3_a_stopped_node_catches_up_and_nobody_waits_for_it(tmp_path: Path) -> None:
    mesh = Mesh.start(tmp_path, 3, "--sync-interval", "1")
    try:
        fprs: list[str] = []
        latencies: list[float] = []
        for i in range(40):
            if i == 10:
                # Node 2 stops answering but keeps its sockets: a push to it is accepted by the
                # kernel and then waits the whole request timeout for an ack that never comes.
                mesh[2].proc.send_signal(signal.SIGSTOP)
            began = time.monotonic()
            assert mesh[i % 2].add(armored(500 + i)).status == 200
            latencies.append(time.monotonic() - began)
            fprs.append(fingerprint(500 + i))
        # An upload that waited for node 2 (its push, or its ack) would take at least that
        # timeout; none did. The bound is the protocol's own, not a guess at this machine's speed.
        config = ReplicationConfig()
        assert max(latencies[10:]) < min(config.request_timeout_s, config.consistency_timeout_s)
        # x-consistency=all cannot be reached with a member down: 503 saying how many acked.
        reply = mesh[0].add(armored(599), headers={"X-Consistency": "all"})
        assert reply.status == 503 and "2 of 3 nodes acknowledged" in reply.text
        assert mesh.has_key(mesh[0], fingerprint(599))  # kept locally all the same
        mesh[2].proc.send_signal(signal.SIGCONT)
        mesh.stop_node(2)
        mesh.start_node(2)
        wait_until(lambda: all(mesh.has_key(mesh[2], f) for f in fprs), 20, "catch-up of node 2")
        wait_until(lambda: len(mesh.roots()) == 1, 10, "equal roots")
    finally:
        if mesh.nodes[2] is not None:
            mesh.nodes[2].proc.send_signal(signal.SIGCONT)
        mesh.close()


@pytest.mark.parametrize("count", [10_000])  # issue 5, check 4: ~10 s here
def test_4_an_empty_node_bootstraps_through_anti_entropy(tmp_path: Path, count: int) -> None:
    (tmp_path / "n0").mkdir()
    build_store(tmp_path / "n0", count)
    mesh = Mesh.start(tmp_path, 1, "--sync-interval", "1")
    try:
        assert mesh.status(mesh[0])["keys"] == count
        mesh.sync_ports.append(free_port())
        mesh.nodes.append(None)
        began = time.monotonic()
        mesh.start_node(1)
        seen_progress = []

        def caught_up() -> bool:
            status = mesh.status(mesh[1])
            if status["syncing"]:
                seen_progress.append(status["syncing"]["pulled"])
            return status["merkle_root"] == mesh.status(mesh[0])["merkle_root"]

        wait_until(caught_up, 90, "the new node to reach the same root", step=0.2)
        elapsed = time.monotonic() - began
        assert mesh.status(mesh[1])["keys"] == count
        print(f"bootstrap of {count} keys: {elapsed:.1f} s, progress samples {seen_progress[:5]}")
    finally:
        mesh.close()


def test_7_garbage_and_oversized_batches_are_dropped_counted_and_not_stored(tmp_path: Path) -> None:
    mesh = Mesh.start(tmp_path, 1)
    try:
        keyring = load_keyring(mesh.key_file)
        addr = ("127.0.0.1", mesh.sync_ports[0])
        results = asyncio.run(_attack(keyring, addr))
        assert results["wrong_key"] == "unreachable"
        assert results["invalid_record"].startswith("batch rejected")
        assert results["oversized"] == "unreachable"
        status = mesh.status(mesh[0])
        assert status["records"] == 0 and status["keys"] == 0
        assert status["counters"]["batches_rejected"] == 1
        dropped = status["net"]["frames_dropped"]
        assert dropped.get("tcp/decrypt", 0) >= 1 and dropped.get("tcp/oversize", 0) >= 1
    finally:
        mesh.close()


async def _attack(keyring: Keyring, addr: tuple[str, int]) -> dict[str, str]:
    out: dict[str, str] = {}
    auth = FrameAuth(NodeIdentity.generate("attacker"))
    good = SealedCodec(keyring, 8 * 1024 * 1024, auth=auth)
    wrong = SealedCodec(Keyring([generate_key()]), 8 * 1024 * 1024, auth=auth)
    valid_record = record(1).encode()
    garbage = b"\x95\x01\xc4\x14" + bytes(20) + b"\xc4\x02\xff\xff\x80\xc0"
    batch = Frame(PushBatch.TYPE, PushBatch((valid_record, garbage)).to_map())
    for name, codec in (("wrong_key", wrong), ("invalid_record", good)):
        client = TcpTransport(("127.0.0.1", 0), codec, _no_handler, NetStats())
        try:
            reply = await client.request(addr, batch, 5)
            message = decode_message(reply.type, reply.body)
            out[name] = message.reason if isinstance(message, SyncError) else type(message).__name__
        except (PeerUnreachable, WireError):
            out[name] = "unreachable"
    reader, writer = await asyncio.open_connection(*addr)
    writer.write((64 * 1024 * 1024).to_bytes(4, "big") + b"x" * 1024)  # announces 64 MiB
    await writer.drain()
    out["oversized"] = "unreachable" if await reader.read() == b"" else "answered"
    writer.close()
    return out


async def _no_handler(addr: tuple[str, int], frame: Frame) -> Frame | None:
    return None
