"""Anti-entropy: a Merkle diff with one peer, then pull and push the differing records.

One round (`SyncRound.run`) with a peer:
1. diff: crdt.merkle_diff's initiator runs here (its tree reads on a store reader thread),
   each query a DiffQuery request, each answer a DiffAnswer; it ends knowing exactly which
   fingerprints differ or are missing on either side. Cost ~ d * depth * fanout hashes.
2. pull: the records the peer has and we lack or hold differently are fetched in batches
   and merged here by the CRDT join (not forwarded: the peer and anti-entropy cover others);
3. push: the records we have and the peer lacks or holds differently are pushed to it in
   batches (forward=False).
Nothing is kept between rounds: a round interrupted by a crash simply runs again after the
restart, against the tree persisted with the records, and moves only what is still missing.
A new, empty node bootstraps through exactly this path, its progress in `SyncProgress`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from crdt.errors import CrdtError
from crdt.merkle import MerkleTree
from crdt.merkle_diff import DiffConfig, DiffInitiator, DiffResult
from meshkp.errors import ReplicationError, WireError
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import DiffAnswer, DiffQuery, Fetch, RecordBatch, SyncError
from meshkp.replication.peers import ByteMeter, Channel, PeerRef
from meshkp.replication.push import Pusher, split_by_bytes
from meshkp.replication.status import SyncProgress

log = logging.getLogger(__name__)

InThread = Callable[[Callable[[], object]], Awaitable[object]]
ApplyRecords = Callable[[Sequence[bytes]], Awaitable[int]]  # -> records that changed our state
ReadRecords = Callable[[Sequence[bytes]], Awaitable[list[bytes]]]


@dataclass(slots=True)
class SyncOutcome:
    """What one round did."""

    in_sync: bool
    keys_pulled: int
    keys_pushed: int
    diff_ids: int
    meter: ByteMeter
    duration_s: float


class SyncRound:
    """One anti-entropy round against one peer."""

    def __init__(
        self,
        config: ReplicationConfig,
        diff_config: DiffConfig,
        tree: MerkleTree,
        channel: Channel,
        pusher: Pusher,
        in_thread: InThread,
        apply_records: ApplyRecords,
        read_records: ReadRecords,
        progress: SyncProgress,
    ) -> None:
        self.config = config
        self.diff_config = diff_config
        self.tree = tree
        self.channel = channel
        self.pusher = pusher
        self.in_thread = in_thread
        self.apply_records = apply_records
        self.read_records = read_records
        self.progress = progress
        self.meter = ByteMeter()

    async def run(self, peer: PeerRef) -> SyncOutcome:
        """Diff, pull, push; ReplicationError/PeerUnreachable/WireError if the round fails."""
        started = time.monotonic()
        result = await self._diff(peer)
        pull = sorted(set(result.remote_only) | set(result.differing))
        push = sorted(set(result.local_only) | set(result.differing))
        self.progress.to_pull, self.progress.to_push = len(pull), len(push)
        self.progress.phase = "pull"
        pulled = await self._pull(peer, pull)
        self.progress.phase = "push"
        pushed = await self._push(peer, push)
        self.progress.phase = "done"
        return SyncOutcome(
            in_sync=not pull and not push,
            keys_pulled=pulled,
            keys_pushed=pushed,
            diff_ids=len(set(pull) | set(push)),
            meter=self.meter,
            duration_s=time.monotonic() - started,
        )

    async def _diff(self, peer: PeerRef) -> DiffResult:
        initiator = DiffInitiator(self.tree, self.diff_config)
        query = await self.in_thread(initiator.start)
        while query is not None:
            assert isinstance(query, bytes)
            reply = await self.channel.request(
                peer, DiffQuery(query), self.config.request_timeout_s, self.meter
            )
            if isinstance(reply, SyncError):
                raise ReplicationError(f"{peer.node_id} refused the diff: {reply.reason}")
            if not isinstance(reply, DiffAnswer):
                raise WireError(f"{peer.node_id} answered a diff query with {type(reply).__name__}")
            answer = reply.data

            def step(answer: bytes = answer) -> bytes | None:
                return initiator.handle(answer)

            try:
                query = await self.in_thread(step)
            except CrdtError as exc:
                raise ReplicationError(f"diff with {peer.node_id} failed: {exc}") from exc
        return initiator.result

    async def _pull(self, peer: PeerRef, fingerprints: list[bytes]) -> int:
        """Fetch and merge `fingerprints` in batches, the next fetch in flight while one applies.

        Pipelining lets the peer read and send batch N+1 while we validate and write batch N,
        so the two nodes work at once (bootstrap speed); one fetch ahead bounds the records
        held in memory to two batches.
        """
        changed = 0
        step = self.config.sync_batch_records
        queue = deque(fingerprints)
        rounds = 0
        pending: asyncio.Task[RecordBatch] | None = None

        def launch() -> asyncio.Task[RecordBatch] | None:
            nonlocal rounds
            if not queue:
                return None
            rounds += 1
            if rounds > len(fingerprints) + 1:  # every reply returns >= 1 record: unreachable
                raise ReplicationError(f"{peer.node_id} keeps deferring records: round abandoned")
            asked = [queue.popleft() for _ in range(min(step, len(queue)))]
            return asyncio.create_task(self._fetch(peer, asked), name=f"fetch-{peer.node_id}")

        try:
            pending = launch()
            while pending is not None:
                reply = await pending
                queue.extendleft(reversed(reply.rest))  # deferred by the peer's byte budget
                pending = launch()
                if reply.records:
                    changed += await self.apply_records(reply.records)
                self.progress.pulled += len(reply.records)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        return changed

    async def _fetch(self, peer: PeerRef, asked: list[bytes]) -> RecordBatch:
        """One Fetch request; its reply checked to hold only what was asked, and progress."""
        reply = await self.channel.request(
            peer, Fetch(tuple(asked)), self.config.request_timeout_s, self.meter
        )
        if isinstance(reply, SyncError):
            raise ReplicationError(f"{peer.node_id} refused a fetch: {reply.reason}")
        if not isinstance(reply, RecordBatch):
            raise WireError(f"{peer.node_id} answered a fetch with {type(reply).__name__}")
        asked_set = set(asked)
        if not set(reply.rest) <= asked_set or len(reply.records) > len(asked):
            raise WireError(f"{peer.node_id} answered a fetch with records not asked for")
        if reply.rest and not reply.records:
            raise ReplicationError(f"{peer.node_id} sent no record for a fetch: no progress")
        return reply

    async def _push(self, peer: PeerRef, fingerprints: list[bytes]) -> int:
        pushed = 0
        step = self.config.sync_batch_records
        for start in range(0, len(fingerprints), step):
            records = await self.read_records(fingerprints[start:start + step])
            for chunk in split_by_bytes(records, self.config.batch_bytes):
                await self.pusher.send(peer, chunk, forward=False, meter=self.meter)
                pushed += len(chunk)
                self.progress.pushed += len(chunk)
        return pushed
