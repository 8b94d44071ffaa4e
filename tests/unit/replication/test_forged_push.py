"""Replication pushes by a cluster-key holder, over real TCP on 127.0.0.1 (issue 12): a push in
another node's name is dropped and counted, a tombstone no node signed is refused, nothing is
written; a push (or a delete) in the pusher's own name is logged with that name."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from crdt.vclock import VersionVector
from meshkp.control.policy.commands import ConflictKind, Rule
from meshkp.control.policy.state import ConflictRules, PolicyState
from meshkp.errors import PeerUnreachable
from meshkp.keys.adminkey import admin_public_key, admin_signing_key
from meshkp.keys.commit import Committer
from meshkp.keys.deleteproof import DeleteProof
from meshkp.keys.policy import resolution_proof
from meshkp.keys.record import KeyRecord
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import LENGTH_BYTES
from meshkp.net.wire import Frame
from meshkp.replication.messages import PushAck, PushBatch, SyncError
from meshkp.replication.peers import PeerRef, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.replication.transport import ReplicationListener
from meshkp.replication.validate import lift_allowed
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

from .helpers import FAST, LIMITS, certificate, record


def _receiver() -> tuple[Keyring, AsyncStore, ReplicationListener, FrameAuth, Replicator]:
    """node-b: a replicator behind a listener on 127.0.0.1, with its identity and peer keys
    (start the listener; stop the replicator, the listener and the store)."""
    keyring = Keyring([generate_key()])
    store = AsyncStore(MemoryStore())
    b_auth = FrameAuth(NodeIdentity.generate("node-b"))
    b = ReplicationListener(("127.0.0.1", 0), keyring, b_auth, NetStats())
    rep = Replicator(store, "node-b", Committer(LIMITS), FAST, StaticPeers([]), b.channel,
                     identity=b_auth.identity, peer_keys=b_auth.peers)
    return keyring, store, b, b_auth, rep


async def test_a_push_as_another_node_is_dropped_and_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    keyring = Keyring([generate_key()])
    store = AsyncStore(MemoryStore())
    b_stats = NetStats()
    b = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("node-b")),
                            b_stats)
    rep = Replicator(store, "node-b", Committer(LIMITS), FAST, StaticPeers([]), b.channel)
    b.handler = rep.handle
    # node-a is a member: B has its key (pinned with its first frame). Mallory holds the
    # cluster key, an identity of her own, and signs a frame that claims node-a's id.
    a = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("node-a")),
                            NetStats())
    as_a = ReplicationListener(("127.0.0.1", 0), keyring,
                               FrameAuth(NodeIdentity.generate("node-a")), NetStats())
    mallory = ReplicationListener(("127.0.0.1", 0), keyring,
                                  FrameAuth(NodeIdentity.generate("mallory")), NetStats())
    await b.start()
    try:
        peer = PeerRef("node-b", b.transport.local_addr)
        ack = await a.channel.request(peer, PushBatch((record(1).encode(),)), 5.0)
        assert isinstance(ack, PushAck)
        with pytest.raises(PeerUnreachable):  # dropped: no reply, the connection is closed
            await as_a.channel.request(peer, PushBatch((record(2).encode(),)), 5.0)
        assert b_stats.dropped[("tcp", "identity")] == 1
        assert await store.get(certificate(2).fingerprint) is None
        # In her own name the push is accepted, and the log names her, not node-a.
        caplog.set_level(logging.DEBUG)
        await mallory.channel.request(peer, PushBatch((record(3).encode(),)), 5.0)
        assert await store.get(certificate(3).fingerprint) is not None
        assert any("event=push_received peer=mallory records=1 changed=1" in r.getMessage()
                   for r in caplog.records)
    finally:
        await rep.stop()
        await b.stop()
        await store.close()


async def test_a_forged_tombstone_deletes_nothing_and_a_signed_one_names_its_node(
        caplog: pytest.LogCaptureFixture) -> None:
    """Red-team finding 10: one forged tombstone push deleted a key everywhere, no admin token."""
    keyring, store, b, b_auth, rep = _receiver()
    b.handler = rep.handle
    real_a = NodeIdentity.generate("node-a")
    b_auth.peers.bind("node-a", real_a.public_key)  # node-a is a member B knows
    mallory_id = NodeIdentity.generate("mallory")
    mallory = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(mallory_id), NetStats())
    await b.start()
    try:
        peer = PeerRef("node-b", b.transport.local_addr)
        await mallory.channel.request(peer, PushBatch((record(1).encode(),)), 5.0)
        fp = certificate(1).fingerprint

        def stored() -> KeyRecord:
            data = store.store.get(fp)
            assert data is not None
            return KeyRecord.decode(data)

        assert not stored().deleted
        forgeries = [
            record(1).delete("node-a", 5, "takedown", "alice"),  # no proof at all
            # signed by a key of her own in node-a's name
            record(1).delete("node-a", 5, "takedown", "alice", NodeIdentity.generate("node-a")),
            # node-a's genuine proof of another key's delete, moved onto this one
            _moved_proof(record(2).delete("node-a", 5, "takedown", "alice", real_a), record(1)),
        ]
        for forged in forgeries:
            reply = await mallory.channel.request(peer, PushBatch((forged.encode(),)), 5.0)
            assert isinstance(reply, SyncError), reply
            assert not stored().deleted
        assert rep.counters.batches_rejected == len(forgeries)
        # In her own name (she holds an identity of her own, as a compromised node would), the
        # delete stands, and the log and the tombstone name her, not "alice"'s node.
        caplog.set_level(logging.INFO)
        own = record(1).delete("mallory", 6, "takedown", "alice", mallory_id)
        assert isinstance(await mallory.channel.request(peer, PushBatch((own.encode(),)), 5.0),
                          PushAck)
        tomb = stored().tombstone
        assert stored().deleted and tomb is not None
        assert [(p.node, p.actor) for p in tomb.proofs] == [("mallory", "alice")]
        assert any("event=delete_received" in r.getMessage() and "signed_by='mallory'" in
                   r.getMessage() and "peer=mallory" in r.getMessage() for r in caplog.records)
    finally:
        await rep.stop()
        await b.stop()
        await store.close()


def _moved_proof(signed: KeyRecord, target: KeyRecord) -> KeyRecord:
    """`target` with the tombstone (and its proof) of another key's delete."""
    assert signed.tombstone is not None
    return KeyRecord(target.fingerprint, target.certificate, signed.vv, signed.tombstone)


async def test_a_captured_push_frame_sent_again_is_dropped_as_a_replay() -> None:
    keyring = Keyring([generate_key()])
    store = AsyncStore(MemoryStore())
    b_stats = NetStats()
    b_auth = FrameAuth(NodeIdentity.generate("node-b"))
    b = ReplicationListener(("127.0.0.1", 0), keyring, b_auth, b_stats)
    rep = Replicator(store, "node-b", Committer(LIMITS), FAST, StaticPeers([]), b.channel,
                     identity=b_auth.identity, peer_keys=b_auth.peers)
    b.handler = rep.handle
    a = SealedCodec(keyring, b.limits.frame_bytes, auth=FrameAuth(NodeIdentity.generate("node-a")))
    frame = a.pack(Frame(PushBatch.TYPE, PushBatch((record(1).encode(),)).to_map()))
    await b.start()
    try:
        host, port = b.transport.local_addr
        for _ in range(2):  # the push, then the same bytes captured off the wire
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(len(frame).to_bytes(LENGTH_BYTES, "big") + frame)
            await writer.drain()
            async with asyncio.timeout(5):
                await reader.read(1 << 20)  # a reply, or the close of a dropped frame
            writer.close()
            await writer.wait_closed()
        assert b_stats.dropped[("tcp", "replay")] == 1
        assert rep.counters.records_received == 1  # the replay never reached the replicator
    finally:
        await rep.stop()
        await b.stop()
        await store.close()


async def test_a_delete_stands_only_with_the_signature_of_an_admin_of_the_policy(
        caplog: pytest.LogCaptureFixture) -> None:
    """A node holding the cluster key and its own identity deleted any key in its own name,
    naming any admin: the admin was vouched for, not proven. Now a receiver whose admin table
    has keys needs a delete signed by one of them (the key derived from that admin's token)."""
    keyring, store, b, b_auth, rep = _receiver()
    alice_token, old_token = "a" * 64, "o" * 64
    # node-b's applied policy: alice's current key, and the key of her token before it was
    # replaced by an entry stamped 100.
    table = PolicyState(admin_keys={admin_public_key(alice_token): "alice",
                                    admin_public_key(old_token): "alice"},
                        admin_keys_retired={admin_public_key(old_token): 100})
    rep.admin_table = lambda: table
    b.handler = rep.handle
    mallory_id = NodeIdentity.generate("mallory")
    mallory = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(mallory_id), NetStats())
    await b.start()
    try:
        peer = PeerRef("node-b", b.transport.local_addr)
        await mallory.channel.request(peer, PushBatch((record(1).encode(),)), 5.0)
        fp = certificate(1).fingerprint

        def deleted() -> bool:
            data = store.store.get(fp)
            assert data is not None
            return KeyRecord.decode(data).deleted

        guessed = admin_signing_key("g" * 64)  # a key of her own, not in the table
        forged_sig = record(1).delete("mallory", 6, "takedown", "alice", mallory_id,
                                      admin_signing_key(alice_token))
        tomb = forged_sig.tombstone
        assert tomb is not None
        (proof,) = tomb.proofs
        bad_admin_sig = dataclasses.replace(proof, admin_sig=bytes(64))
        forgeries = [
            record(1).delete("mallory", 6, "takedown", "alice", mallory_id),  # no admin at all
            record(1).delete("mallory", 6, "takedown", "alice", mallory_id, guessed),
            KeyRecord(fp, forged_sig.certificate, forged_sig.vv,
                      dataclasses.replace(tomb, proofs=(bad_admin_sig,))),
            # the old token, stolen, signs a delete stamped after its rotation
            record(1).delete("mallory", 200, "takedown", "alice", mallory_id,
                             admin_signing_key(old_token)),
        ]
        for forged in forgeries:
            reply = await mallory.channel.request(peer, PushBatch((forged.encode(),)), 5.0)
            assert isinstance(reply, SyncError), reply
            assert not deleted()
        caplog.set_level(logging.INFO)
        for token in (old_token, alice_token):  # signed before and after a rotation: both stand
            signed = record(1).delete("mallory", 7, "takedown", "alice", mallory_id,
                                      admin_signing_key(token))
            ack = await mallory.channel.request(peer, PushBatch((signed.encode(),)), 5.0)
            assert isinstance(ack, PushAck), ack
            assert deleted()
        admin_hex = admin_public_key(old_token)[:8].hex()
        assert any("event=delete_received" in r.getMessage() and admin_hex in r.getMessage()
                   for r in caplog.records)
    finally:
        await rep.stop()
        await b.stop()
        await store.close()


async def test_a_delete_cannot_be_widened_nor_lifted_without_a_signed_resolution() -> None:
    """Lifts (keep-update resolutions) and keep-delete resolutions were written unsigned, and a
    tombstone's vectors were not held to its proofs: a key holder could copy a real delete's
    proof and lift it (the key served again everywhere), or widen what it had seen."""
    keyring, store, b, b_auth, rep = _receiver()
    alice_token = "a" * 64
    policy = PolicyState(admin_keys={admin_public_key(alice_token): "alice"})
    rep.admin_table = lambda: policy
    b.handler = rep.handle
    mallory_id = NodeIdentity.generate("mallory")
    mallory = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(mallory_id), NetStats())
    alice = admin_signing_key(alice_token)
    await b.start()
    try:
        peer = PeerRef("node-b", b.transport.local_addr)
        fp = certificate(1).fingerprint
        deleted = record(1).delete("mallory", 6, "spam", "alice", mallory_id, alice)
        assert isinstance(await mallory.channel.request(peer, PushBatch((deleted.encode(),)), 5.0),
                          PushAck)
        tomb = deleted.tombstone
        assert tomb is not None
        wider = VersionVector.from_obj({**tomb.seen.to_obj(), "node-z": 99})

        def lift(proofs: tuple[DeleteProof, ...]) -> KeyRecord:
            lifted = dataclasses.replace(tomb, lifted=tomb.seen, lift_proofs=proofs)
            return KeyRecord(fp, deleted.certificate, deleted.vv, lifted)

        def served() -> bool:
            data = store.store.get(fp)
            assert data is not None
            return not KeyRecord.decode(data).deleted

        node_only = DeleteProof.make(mallory_id, fp, 0, "", "mallory", tomb.seen, lift=True)
        as_delete = DeleteProof.make(mallory_id, fp, 0, "", "alice", tomb.seen, alice)  # not a lift
        forgeries = [
            lift(()),  # the lift alone, no proof
            lift((dataclasses.replace(as_delete, lift=True),)),  # a delete's proof as a lift's
            lift((node_only,)),  # signed by a node alone, and the rule here is delete-wins
            KeyRecord(fp, deleted.certificate, wider, dataclasses.replace(tomb, seen=wider)),
        ]
        for forged in forgeries:
            reply = await mallory.channel.request(peer, PushBatch((forged.encode(),)), 5.0)
            assert isinstance(reply, SyncError), reply
            assert not served()
        # An admin's signed keep-update resolution lifts it (what meshkp conflicts resolve does).
        signed = resolution_proof(mallory_id, fp, True, tomb.seen, 0, "", "alice", alice)
        ack = await mallory.channel.request(peer, PushBatch((lift((signed,)).encode(),)), 5.0)
        assert isinstance(ack, PushAck), ack
        assert served()
    finally:
        await rep.stop()
        await b.stop()
        await store.close()


def test_a_rule_lift_signed_by_the_leader_stands_where_the_rule_says_update_wins() -> None:
    leader = NodeIdentity.generate("n0")
    fp = certificate(1).fingerprint
    deleted = record(1).delete("n0", 6, "keep-it", "alice", leader)
    assert deleted.tombstone is not None
    proof = resolution_proof(leader, fp, True, deleted.vv, 0, "", "policy update-wins")
    tomb = dataclasses.replace(deleted.tombstone, lifted=deleted.vv, lift_proofs=(proof,))
    update_wins = PolicyState(conflict_rules={
        ConflictKind.DELETE_UPDATE: ConflictRules(Rule.DELETE_WINS, {"keep-it": Rule.UPDATE_WINS})})
    assert lift_allowed(tomb, update_wins)
    assert not lift_allowed(tomb, PolicyState())  # delete-wins here: only an admin may lift
