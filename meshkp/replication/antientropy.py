"""Anti-entropy: a Merkle diff with one peer, then pull and push the differing records.

One round (`SyncRound.run`) with a peer:
0. snapshot, when our tree is empty or an interrupted bootstrap left its cursor (a new
   node): the peer's stored rows are copied as they are (snapshot.py). With
   verify_peer_records = "all" the records are pulled and verified instead (scan): in
   fingerprint order, page by page (Scan/ScanBatch), without a diff, which against an empty
   tree would only send every id and digest ahead of the records. The diff that follows
   finds what changed on the peer during the copy or scan.
1. diff: crdt.recon's compact initiator, v3 (v2 with a peer that refused a v3 query, or
   crdt.merkle_diff's v1 with config diff_protocol "merkle" and with a peer that refused v2
   too) runs here, its tree reads on a store reader thread, each query a DiffQuery request,
   each answer a DiffAnswer; it ends knowing which fingerprints differ or are missing on
   either side. Cost ~ d * log4(n/d) * 4 short hashes; v3 closes with a check that the trees
   agree outside what it listed (a diff whose check failed twice is logged).
   If the compact diff estimates the difference at far_behind_differences or more (or a
   quarter of our keys), it stops and the round copies the peer's store (snapshot, step 0,
   which keeps and joins what we hold), then diffs again: a far-behind node does not pull
   key by key.
2. pull: the records the peer has and we lack or hold differently are fetched in batches
   and merged here by the CRDT join (not forwarded: the peer and anti-entropy cover others);
3. push: the records we have and the peer lacks or holds differently are pushed to it in
   batches (forward=False).
Nothing is kept between rounds: a round interrupted by a crash simply runs again after the
restart, against the tree persisted with the records, and moves only what is still missing.
A new, empty node bootstraps through this path (scan, then diff), its progress in
`SyncProgress`. Pulls are pipelined: the next batch is requested while earlier ones are
validated (worker processes, prepare.py) and merged (the store's writer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from crdt.diff_session import DiffResult
from crdt.errors import CrdtError
from crdt.merkle import MerkleTree
from crdt.merkle_diff import DiffConfig, DiffInitiator
from crdt.recon import ReconConfig, ReconInitiator
from crdt.recon_wire import RECON_VERSION, V2
from meshkp.errors import InvalidPeerRecord, ReplicationError, WireError
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import (
    DiffAnswer,
    DiffQuery,
    Fetch,
    RecordBatch,
    Scan,
    ScanBatch,
    SyncError,
)
from meshkp.replication.peers import ByteMeter, Channel, PeerRef
from meshkp.replication.push import Pusher, split_by_bytes
from meshkp.replication.status import SyncProgress

log = logging.getLogger(__name__)

InThread = Callable[[Callable[[], object]], Awaitable[object]]
ApplyRecords = Callable[[Sequence[bytes]], Awaitable[int]]  # -> records that changed our state
ReadRecords = Callable[[Sequence[bytes]], Awaitable[list[bytes]]]
# A snapshot bootstrap (snapshot.py) if this node wants one, or (True) is far behind the peer:
# records copied, None if not wanted or not possible.
CopySnapshot = Callable[[PeerRef, ByteMeter, bool], Awaitable[int | None]]
Initiator = DiffInitiator | ReconInitiator
# Pulled batches being applied at once: one merging while the next is validated.
_APPLYING = 2
# Records one bootstrap scan may pull: several times the largest public key set (SKS's ~7
# million keys). Each page must move the cursor on, but a hostile peer could invent keys
# forever; this ends such a round.
_MAX_SCAN_RECORDS = 50_000_000


class _LegacyPeer(Exception):
    """The peer refused a compact diff query as an older responder does."""


def _refuses_version(reason: str) -> bool:
    # What crdt.merkle_diff's decode_query says of a v2 query (a msgpack array, not a map),
    # and so also a v2 node of a v3 one (which it does not take for v2, so hands to v1).
    return reason.startswith("malformed diff query")


@dataclass(slots=True)
class SyncOutcome:
    """What one round did."""

    in_sync: bool
    keys_pulled: int
    keys_pushed: int
    diff_ids: int
    meter: ByteMeter
    duration_s: float
    refused: int = 0  # pulled records that failed validation: counted, logged, never stored


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
        copy_snapshot: CopySnapshot | None = None,
        peer_versions: dict[str, int] | None = None,
        recon_config: ReconConfig | None = None,
    ) -> None:
        self.config = config
        # Peers that refused a compact diff query of a newer version: the version each takes
        # (1: crdt.merkle_diff). Absent: the newest.
        self.peer_versions = peer_versions if peer_versions is not None else {}
        self.recon_config = recon_config or ReconConfig()
        self.far_behind = False  # this round found the peer far ahead and copied its store
        self.copy_snapshot = copy_snapshot
        self.diff_config = diff_config
        self.tree = tree
        self.channel = channel
        self.pusher = pusher
        self.in_thread = in_thread
        self.apply_records = apply_records
        self.read_records = read_records
        self.progress = progress
        self.meter = ByteMeter()
        self.refused = 0

    async def run(self, peer: PeerRef) -> SyncOutcome:
        """(Scan,) diff, pull, push; ReplicationError/PeerUnreachable/WireError on failure."""
        started = time.monotonic()
        scanned = 0
        if self.copy_snapshot is not None:
            self.progress.phase = "snapshot"
            scanned = await self.copy_snapshot(peer, self.meter, False) or 0
            self.progress.pulled += scanned
            self.progress.to_pull += scanned
        if not scanned and await self.in_thread(self._empty):
            # Bootstrap: with nothing here, a diff would only list every id of the peer.
            self.progress.phase = "scan"
            scanned = await self._scan(peer)
        self.progress.phase = "diff"
        # After a scan or copy: what changed on the peer meanwhile.
        result = await self._diff(peer, may_give_up=not scanned)
        if result is None:  # far behind: copy the peer's store, then what changed meanwhile
            self.far_behind = True
            self.progress.phase = "snapshot"
            assert self.copy_snapshot is not None
            copied = await self.copy_snapshot(peer, self.meter, True)
            scanned = copied or 0
            self.progress.pulled += scanned
            self.progress.to_pull += scanned
            self.progress.phase = "diff"
            result = await self._diff(peer, may_give_up=False)
            assert result is not None
        pull = sorted(set(result.remote_only) | set(result.differing))
        push = sorted(set(result.local_only) | set(result.differing))
        self.progress.to_pull += len(pull)
        self.progress.to_push = len(push)
        self.progress.phase = "pull"
        pulled = await self._pull(peer, pull)
        self.progress.phase = "push"
        pushed = await self._push(peer, push)
        self.progress.phase = "done"
        return SyncOutcome(
            in_sync=not pull and not push and not scanned,
            keys_pulled=pulled + scanned,
            keys_pushed=pushed,
            diff_ids=len(set(pull) | set(push)),
            meter=self.meter,
            duration_s=time.monotonic() - started,
            refused=self.refused,
        )

    def _empty(self) -> bool:
        return len(self.tree) == 0

    async def _scan(self, peer: PeerRef) -> int:
        """Pull every record of the peer in fingerprint order; the number that changed ours.

        Like _pull, the next page is asked for as soon as one arrives, and pages are applied
        `_APPLYING` at a time.
        """
        applying: deque[asyncio.Task[int]] = deque()
        changed = 0
        cursor = b""
        received = 0
        try:
            while True:
                if received > _MAX_SCAN_RECORDS:
                    raise ReplicationError(f"{peer.node_id} keeps scanning on: round abandoned")
                reply = await self.channel.request(
                    peer, Scan(cursor, self.config.scan_batch_records),
                    self.config.request_timeout_s, self.meter,
                )
                if isinstance(reply, SyncError):
                    raise ReplicationError(f"{peer.node_id} refused a scan: {reply.reason}")
                if not isinstance(reply, ScanBatch):
                    raise WireError(f"{peer.node_id} answered a scan with {type(reply).__name__}")
                if reply.next and (not reply.records or reply.next <= cursor):
                    raise WireError(f"{peer.node_id} answered a scan without moving on")
                self.progress.to_pull = max(self.progress.to_pull, reply.total)
                received += len(reply.records)
                if reply.records:
                    applying.append(asyncio.create_task(self._apply(reply.records)))
                while len(applying) >= _APPLYING or (not reply.next and applying):
                    changed += await applying.popleft()
                if not reply.next:
                    return changed
                cursor = reply.next
        finally:
            for task in applying:
                task.cancel()
            await asyncio.gather(*applying, return_exceptions=True)

    async def _apply(self, records: Sequence[bytes]) -> int:
        """Merge one pulled page; a page we refuse is retried record by record.

        Pages are all-or-nothing, but one record we refuse (a peer running other limits, two
        concurrent updates merged past key_bytes, a forgery) must not stop every record after
        it from ever arriving: rounds pull in fingerprint order, so aborting at it would stall
        this peer's sync there for good. The refused records are counted and never stored.
        """
        try:
            done = await self.apply_records(records)
        except InvalidPeerRecord as exc:
            if len(records) == 1:
                self.refused += 1
                log.warning("event=pulled_record_refused error=%s", exc)
                done = 0
            else:
                return sum([await self._apply([record]) for record in records])
        self.progress.pulled += len(records)
        return done

    async def _diff(self, peer: PeerRef, may_give_up: bool) -> DiffResult | None:
        """What differs from `peer`; None if the compact diff found this node far behind.

        The newest compact version first; a peer that refuses it as an older node does is
        asked again one version down (v3, v2, then v1), and remembered at that version.
        """
        version = self.peer_versions.get(peer.node_id, RECON_VERSION)
        give_up = (await self._far_behind_bound() if may_give_up else None)
        while self.config.diff_protocol == "compact" and version >= V2:
            compact = ReconInitiator(self.tree, self.recon_config, give_up, version)
            try:
                result = await self._run_diff(peer, compact)
            except _LegacyPeer as exc:
                version -= 1
                self.peer_versions[peer.node_id] = version
                log.info("event=diff_protocol_fallback peer=%s version=%d reason=%s",
                         peer.node_id, version, exc)
                continue
            if compact.verified is False:
                log.warning("event=diff_check_failed peer=%s differences=%d: the trees "
                            "differ outside what the diff found, twice (a tree changing "
                            "during the round, or a collision); the next round looks again",
                            peer.node_id, len(result.ids()))
            if compact.gave_up:
                log.info("event=sync_far_behind peer=%s estimated_differences=%d "
                         "action=snapshot", peer.node_id, compact.estimate())
                return None
            return result
        return await self._run_diff(peer, DiffInitiator(self.tree, self.diff_config))

    async def _far_behind_bound(self) -> int | None:
        """Estimated differences from which a round copies the peer's store instead."""
        if self.copy_snapshot is None or not self.config.far_behind_differences:
            return None
        held = await self.in_thread(self._held)
        assert isinstance(held, int)
        return max(self.config.far_behind_differences, held // 4)

    def _held(self) -> int:
        return len(self.tree)

    async def _run_diff(self, peer: PeerRef, initiator: Initiator) -> DiffResult:
        query = await self.in_thread(initiator.start)
        first = True
        while query is not None:
            assert isinstance(query, bytes)
            reply = await self.channel.request(
                peer, DiffQuery(query), self.config.request_timeout_s, self.meter
            )
            if isinstance(reply, SyncError):
                if (first and isinstance(initiator, ReconInitiator)
                        and _refuses_version(reply.reason)):
                    raise _LegacyPeer(reply.reason)
                raise ReplicationError(f"{peer.node_id} refused the diff: {reply.reason}")
            first = False
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
        """Fetch and merge `fingerprints` in batches, as a pipeline of three stages.

        While batch N is merged (the store's writer) and N+1 is validated (apply_records'
        first stage: worker processes for large batches), N+2 is being read and sent by the
        peer: both nodes and every core work at once, which is what makes a bootstrap fast.
        At most one fetch and `_APPLYING` batches are in flight: memory stays bounded.
        """
        step = self.config.sync_batch_records
        queue = deque(fingerprints)
        rounds = 0
        fetching: asyncio.Task[RecordBatch] | None = None
        applying: deque[asyncio.Task[int]] = deque()
        changed = 0

        def fetch_next() -> asyncio.Task[RecordBatch] | None:
            nonlocal rounds
            if not queue:
                return None
            rounds += 1
            if rounds > len(fingerprints) + 1:  # every reply returns >= 1 record: unreachable
                raise ReplicationError(f"{peer.node_id} keeps deferring records: round abandoned")
            asked = [queue.popleft() for _ in range(min(step, len(queue)))]
            return asyncio.create_task(self._fetch(peer, asked), name=f"fetch-{peer.node_id}")

        try:
            fetching = fetch_next()
            while fetching is not None:
                reply = await fetching
                queue.extendleft(reversed(reply.rest))  # deferred by the peer's byte budget
                fetching = fetch_next()
                if reply.records:
                    applying.append(asyncio.create_task(self._apply(reply.records)))
                while len(applying) >= _APPLYING or (fetching is None and applying):
                    changed += await applying.popleft()
        finally:
            for task in (fetching, *applying):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(t for t in (fetching, *applying) if t is not None),
                                 return_exceptions=True)
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
