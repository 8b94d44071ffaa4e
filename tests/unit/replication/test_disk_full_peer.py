"""A peer's push to a node whose disk is full is refused with a SyncError (not acknowledged,
so the sender keeps it), and nothing escapes to the transport (regression: every refused push
logged a traceback, event=tcp_handler_failed, and every sync round event=sync_loop_bug)."""

from __future__ import annotations

from collections.abc import Sequence

from meshkp.errors import StoreFull
from meshkp.keys.commit import Committer
from meshkp.replication.messages import PushBatch, SyncError
from meshkp.replication.peers import StaticPeers
from meshkp.replication.replicator import Replicator
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import RecordWrite

from .helpers import FAST, LIMITS, record


class FullStore(MemoryStore):
    def write(self, writes: Sequence[RecordWrite], sync: bool = True) -> None:
        raise StoreFull("the disk holding /data/keys is full, so nothing was stored")


class _NoChannel:
    async def request(self, *_args: object, **_kwargs: object) -> object:
        raise AssertionError("no peers")


async def test_a_push_to_a_full_disk_is_refused_not_acknowledged() -> None:
    store = AsyncStore(FullStore())
    replicator = Replicator(store, "n0", Committer(LIMITS), FAST, StaticPeers(), _NoChannel())
    try:
        reply = await replicator.handle("p", PushBatch((record(1).encode(),), forward=True))
        assert isinstance(reply, SyncError) and "full" in reply.reason
    finally:
        await replicator.stop()
        await store.close()
