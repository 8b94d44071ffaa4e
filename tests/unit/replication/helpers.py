"""Test plumbing for replication: in-process replicator meshes over the loopback channel."""

from __future__ import annotations

import random
from dataclasses import dataclass

from meshkp.keys.commit import UPLOADED, Committer
from meshkp.keys.ingest import uploading
from meshkp.keys.record import KeyRecord
from meshkp.net.identity import NodeIdentity
from meshkp.net.peerkeys import PeerKeys
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.loopback import LoopbackNetwork
from meshkp.replication.peers import PeerRef, StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import Store
from tests.unit.keys.helpers import LIMITS, certificate, record, with_vv

__all__ = ["FAST", "LIMITS", "Mesh", "Member", "certificate", "record", "with_vv"]

FAST = ReplicationConfig(sync_interval_s=3600, first_sync_delay_s=3600, request_timeout_s=2.0,
                         consistency_timeout_s=1.0)


@dataclass
class Member:
    node_id: str
    store: AsyncStore
    replicator: Replicator

    @property
    def raw(self) -> Store:
        return self.store.store

    async def upload(self, *indexes: int) -> None:
        """Commit generated keys as POST /pks/add does (the pusher observes the commit)."""
        certs = [certificate(i) for i in indexes]
        await self.replicator.committer.run(self.store, uploading(certs, self.node_id), UPLOADED)

    async def root(self) -> str:
        return str((await self.replicator.status())["merkle_root"])

    async def get(self, index: int) -> KeyRecord | None:
        data = await self.store.get(certificate(index).fingerprint)
        return KeyRecord.decode(data) if data is not None else None


class Mesh:
    """N replicators over a LoopbackNetwork, each peered with all others (StaticPeers)."""

    def __init__(self, n: int, config: ReplicationConfig = FAST, seed: int = 1) -> None:
        self.net = LoopbackNetwork()
        self.peer_keys = PeerKeys()  # one directory for the mesh: every node knows every key
        self.members: list[Member] = []
        ids = [f"n{i}" for i in range(n)]
        for node_id in ids:
            store = AsyncStore(MemoryStore())
            peers = StaticPeers([PeerRef(other, ("127.0.0.1", 0)) for other in ids if other != node_id])
            rep = Replicator(store, node_id, Committer(LIMITS), config, peers,
                             self.net.channel(node_id), rng=random.Random(seed + len(self.members)),
                             identity=NodeIdentity.generate(node_id), peer_keys=self.peer_keys)
            self.net.add(node_id, rep)
            self.members.append(Member(node_id, store, rep))

    def __getitem__(self, i: int) -> Member:
        return self.members[i]

    async def settle(self, rounds: int = 200) -> None:
        """Let push senders run until every queue is empty (bounded)."""
        import asyncio

        for _ in range(rounds):
            busy = [t for m in self.members for t in m.replicator.pusher._senders.values() if not t.done()]
            if not busy:
                return
            await asyncio.wait(busy, timeout=1.0)

    async def close(self) -> None:
        for m in self.members:
            await m.replicator.stop()
            await m.store.close()
