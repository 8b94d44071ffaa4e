"""Replicators in one process over the loopback channel: push, anti-entropy, deletes, bounds."""

from __future__ import annotations

import dataclasses

import pytest

from bench.keygen import generate_key
from meshkp.keys.record import KeyRecord
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Packet
from meshkp.replication.messages import ACK_CHANGED, PushBatch, SyncError, decode_message
from meshkp.replication.peers import PeerRef
from meshkp.replication.push import PeerQueue

from .helpers import FAST, LIMITS, Mesh, certificate, record


@pytest.fixture
async def mesh3():
    mesh = Mesh(3)
    yield mesh
    await mesh.close()


async def test_an_upload_is_pushed_to_every_peer(mesh3: Mesh) -> None:
    await mesh3[0].upload(1, 2, 3)
    await mesh3.settle()
    roots = {await m.root() for m in mesh3.members}
    assert len(roots) == 1
    for m in mesh3.members:
        assert (await m.get(2)) == record(2, "n0")


async def test_forward_while_new_reaches_nodes_beyond_the_fanout() -> None:
    mesh = Mesh(6, dataclasses.replace(FAST, fanout=2, origin_fanout=2), seed=7)
    try:
        await mesh[0].upload(*range(5))
        await mesh.settle()
        have = [sum([await m.get(i) is not None for i in range(5)]) for m in mesh.members]
        # Fanout 2 of 5 peers: the two chosen forward what is new to them, and so on.
        assert sum(h == 5 for h in have) >= 4, have
    finally:
        await mesh.close()


async def test_a_node_that_pushed_to_every_peer_asks_nobody_to_relay() -> None:
    mesh = Mesh(5)  # origin_fanout 0: the accepting node pushes to all four peers itself
    try:
        await mesh[0].upload(*range(8))
        await mesh.settle()
        for peer in mesh.members[1:]:
            assert peer.replicator.counters.records_received == 8  # once each, no relays
            assert peer.replicator.counters.pushes_sent == 0
        assert len({await m.root() for m in mesh.members}) == 1
    finally:
        await mesh.close()


async def test_anti_entropy_repairs_what_push_missed_in_both_directions(mesh3: Mesh) -> None:
    a, b = mesh3[0], mesh3[1]
    mesh3.net.down.add("n1")
    await a.upload(*range(0, 20))
    await mesh3.settle()
    mesh3.net.down.clear()
    mesh3.net.down.add("n0")
    await b.upload(*range(15, 30))
    await mesh3.settle()
    mesh3.net.down.clear()
    assert await a.root() != await b.root()
    outcome = await a.replicator.sync_with(PeerRef("n1", ("127.0.0.1", 0)))
    assert outcome is not None and not outcome.in_sync
    assert await a.root() == await b.root()
    status = a.replicator.statuses["n1"]
    assert status.last_result == "synced" and status.last_bytes_sent > 0
    again = await a.replicator.sync_with(PeerRef("n1", ("127.0.0.1", 0)))
    assert again is not None and again.in_sync and again.meter.sent < 2000


async def test_an_empty_node_bootstraps_through_anti_entropy(mesh3: Mesh) -> None:
    mesh3.net.down.update({"n1", "n2"})
    await mesh3[0].upload(*range(60))
    await mesh3.settle()  # the pushes run (and fail) while the others are down
    mesh3.net.down.clear()
    await mesh3[2].replicator.sync_with(PeerRef("n0", ("127.0.0.1", 0)))
    assert await mesh3[2].root() == await mesh3[0].root()
    status = await mesh3[2].replicator.status()
    assert status["keys"] == 60 and status["peers"]["n0"]["last"]["keys_pulled"] == 60


async def test_a_bootstrap_scans_in_pages_and_moves_little_more_than_the_records() -> None:
    # The scan is the bootstrap of a node that verifies every record (no snapshot copy).
    config = dataclasses.replace(FAST, scan_batch_records=7, snapshot_bootstrap=False)  # 9 pages
    mesh = Mesh(2, config)
    try:
        mesh.net.down.add("n1")
        await mesh[0].upload(*range(60))
        await mesh.settle()  # the pushes run (and fail) while n1 is down
        mesh.net.down.clear()
        outcome = await mesh[1].replicator.sync_with(PeerRef("n0", ("127.0.0.1", 0)))
        assert outcome is not None and outcome.keys_pulled == 60
        assert await mesh[1].root() == await mesh[0].root()
        records = await mesh[0].replicator.read_records([certificate(i).fingerprint for i in range(60)])
        # Pages of records, then one diff of equal trees: no list of every id and digest.
        assert outcome.meter.received < sum(map(len, records)) * 1.1 + 2000
        assert 9 <= outcome.meter.requests <= 9 + 1  # pages, then one diff step
        # A node that holds something diffs instead of scanning, and is then in sync.
        again = await mesh[1].replicator.sync_with(PeerRef("n0", ("127.0.0.1", 0)))
        assert again is not None and again.in_sync and again.meter.requests == 1
    finally:
        await mesh.close()


async def test_a_scan_page_with_an_invalid_record_stores_the_rest_and_counts_it() -> None:
    # Regression: the whole page used to be refused and the round aborted, so every record
    # after an invalid one (in fingerprint order) never arrived from that peer.
    mesh = Mesh(2, dataclasses.replace(FAST, snapshot_bootstrap=False))
    try:
        mesh.net.down.add("n1")
        await mesh[0].upload(1, 2)
        await mesh.settle()  # the pushes run (and fail) while n1 is down
        mesh.net.down.clear()
        bad = dataclasses.replace(record(3), fingerprint=certificate(4).fingerprint)

        async def scan_answer(_sender, message):  # n0 answers scans with a forged page
            from meshkp.replication.messages import ScanBatch

            return ScanBatch((record(1).encode(), bad.encode()), b"", 2)

        mesh.net.nodes["n0"] = type("Forger", (), {"handle": staticmethod(scan_answer)})()
        # (The forger answers the diff that follows the scan with a ScanBatch too, so the round
        # ends in an error after the scan: what matters is what the scan page stored.)
        await mesh[1].replicator.sync_with(PeerRef("n0", ("127.0.0.1", 0)))
        assert mesh[1].replicator.counters.records_rejected >= 1
        assert await mesh[1].get(1) is not None  # the valid record of the page is stored
        assert await mesh[1].get(4) is None and await mesh[1].get(3) is None  # the forgery not
    finally:
        await mesh.close()


async def test_concurrent_updates_converge_to_the_union(mesh3: Mesh) -> None:
    # n0 holds key 5 without its subkey, n1 adds the subkey while partitioned from n0.
    bare = normalise(parse_packets(generate_key(5, seed=b"repl-test", with_subkey=False).data))
    full = certificate(5)
    mesh3.net.down.add("n1")
    await mesh3[0].replicator._merge([KeyRecord.new(bare, "n0")])
    mesh3.net.down.clear()
    mesh3.net.down.add("n0")
    await mesh3[1].replicator._merge([KeyRecord.new(full, "n1")])
    mesh3.net.down.clear()
    for m in mesh3.members:
        await m.replicator.sync_now()
    got = [await m.get(5) for m in mesh3.members]
    assert all(g == got[0] for g in got)
    assert got[0].certificate == full and got[0].vv.to_obj() == {"n0": 1, "n1": 1}


async def test_a_delete_reaches_every_node_and_a_stale_node_does_not_resurrect(mesh3: Mesh) -> None:
    await mesh3[0].upload(7)
    await mesh3.settle()
    mesh3.net.down.add("n2")  # n2 is away during the delete, still holding the key
    await mesh3[0].replicator.delete(certificate(7).fingerprint, "court order", "alice")
    await mesh3.settle()
    mesh3.net.down.clear()
    assert (await mesh3[1].get(7)).deleted
    assert not (await mesh3[2].get(7)).deleted
    await mesh3[2].replicator.sync_now()  # n2 comes back and syncs in both directions
    for m in mesh3.members:
        await m.replicator.sync_now()
        rec = await m.get(7)
        assert rec.deleted and rec.conflict is None
        assert (await m.replicator.status())["keys"] == 0


async def test_a_concurrent_upload_becomes_a_conflict_on_every_node(mesh3: Mesh) -> None:
    bare = normalise(parse_packets(generate_key(9, seed=b"repl-test", with_subkey=False).data))
    base = KeyRecord.new(bare, "n0")
    for m in mesh3.members:
        await m.replicator._merge([base])
    mesh3.net.down.add("n1")
    await mesh3[0].replicator.delete(base.fingerprint, "spam", "bob")
    await mesh3.settle()
    mesh3.net.down.clear()
    mesh3.net.down.add("n0")
    await mesh3[1].replicator._merge([base.add(certificate(9), "n1")])  # concurrent update
    mesh3.net.down.clear()
    await mesh3.settle()
    for m in mesh3.members:
        await m.replicator.sync_now()
    for m in mesh3.members:
        conflicts = await m.replicator.conflicts()
        assert [c.fingerprint for c in conflicts] == [base.fingerprint]
        assert conflicts[0].conflict.unseen_adds == {"n1": 1}


async def test_a_slow_peer_cannot_grow_the_push_queue_without_bound() -> None:
    mesh = Mesh(2, dataclasses.replace(FAST, push_queue_max=10, fanout=1))
    try:
        mesh.net.down.add("n1")
        pusher = mesh[0].replicator.pusher
        # Enqueue without running the sender: the queue is what a stalled peer accumulates.
        queue = pusher.queues.setdefault("n1", PeerQueue(10))
        dropped = sum(queue.add(bytes([i]) * 20, 0.0) for i in range(100))
        assert dropped == 90
        assert len(pusher.queues["n1"]) == 10
        await mesh[0].upload(*range(30))
        await mesh.settle()
        assert pusher.pending() == 0  # the unreachable peer's queue was dropped, not kept
        assert mesh[0].replicator.counters.push_failures >= 1
    finally:
        await mesh.close()


async def test_a_peer_sending_garbage_is_refused_and_counted_and_nothing_is_stored(mesh3: Mesh) -> None:
    target = mesh3[1].replicator
    good, bad = record(1).encode(), b"\x95\x01\xc4\x14" + bytes(20) + b"\xc4\x02\xff\xff\x80\xc0"
    frame = encode_frame(Frame(PushBatch.TYPE, PushBatch((good, bad)).to_map()), TCP_FRAME_BYTES)
    reply = await mesh3.net.deliver("n0", "n1", frame)
    assert reply is not None
    decoded = decode_frame(reply, TCP_FRAME_BYTES)
    answer = decode_message(decoded.type, decoded.body)
    assert isinstance(answer, SyncError) and "nothing stored" in answer.reason
    assert target.counters.batches_rejected == 1
    assert (await target.status())["records"] == 0  # the good record of the batch was not kept
    # A frame that is not a replication message at all is dropped by the channel.
    assert await mesh3.net.deliver("n0", "n1", b"\x01\x28\xc1") is None
    assert mesh3.net.dropped == 1
    # A forged self-signature is refused on the push path (verify_peer_records="push").
    cert = certificate(1)
    uid = next(iter(cert.user_ids.values()))
    mallory = dataclasses.replace(uid, packet=Packet(13, b"Mallory"))
    forged_cert = dataclasses.replace(cert, user_ids={b"Mallory": mallory})
    forged = dataclasses.replace(record(1), certificate=forged_cert)
    answer = await target.handle("n0", PushBatch((forged.encode(),)))
    assert isinstance(answer, SyncError) and (await target.status())["records"] == 0


async def test_quorum_waits_for_a_majority_and_reports_a_shortfall(mesh3: Mesh) -> None:
    await mesh3[0].upload(11)
    fp = certificate(11).fingerprint
    assert await mesh3[0].replicator.wait_for([fp], "quorum") == (2, 2)
    assert (await mesh3[1].get(11)) is not None or (await mesh3[2].get(11)) is not None
    assert await mesh3[0].replicator.wait_for([fp], "all") == (3, 3)
    mesh3.net.down.update({"n1", "n2"})
    acked, needed = await mesh3[0].replicator.wait_for([fp], "quorum")
    assert (acked, needed) == (1, 2)


async def test_push_ack_reports_what_was_new(mesh3: Mesh) -> None:
    ack = await mesh3[1].replicator.handle("n0", PushBatch((record(4).encode(),), forward=False))
    assert ack.statuses == (ACK_CHANGED,)
    ack = await mesh3[1].replicator.handle("n0", PushBatch((record(4).encode(),), forward=False))
    assert ack.statuses == (0,)
    assert LIMITS.key_bytes > 0
