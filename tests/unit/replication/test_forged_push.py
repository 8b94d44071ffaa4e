"""A replication push in another node's name, over real TCP on 127.0.0.1 (issue 12): dropped
and counted, nothing written; a push in the pusher's own name is logged with that name."""

from __future__ import annotations

import logging

import pytest

from meshkp.errors import PeerUnreachable
from meshkp.keys.commit import Committer
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.replication.messages import PushAck, PushBatch
from meshkp.replication.peers import PeerRef, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.replication.transport import ReplicationListener
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

from .helpers import FAST, LIMITS, certificate, record


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
