"""Replicator: one node's replication — receive, push, anti-entropy, deletes, consistency, status.

It owns no sockets: requests go out through a `Channel` and come in through `handle()`, which
the TCP listener (meshkp/replication/transport.py) or an in-process test channel calls. Store
work runs on the AsyncStore's threads: reads on its pool; records received and deletes are
committed through the node's one commit path (meshkp/keys/commit.py, on the store's writer);
parsing and signature checks run in a thread or, for large batches, the node's worker pool.
The pusher observes every commit, so it pushes what an upload, a delete or a relayed push
changed, whichever part of the node made the write.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import nacl.signing

from crdt.errors import CrdtError, DiffProtocolError
from crdt.hlc import HybridLogicalClock
from crdt.merkle_diff import DiffConfig, DiffResponder
from crdt.recon import ReconResponder
from crdt.recon_wire import is_recon_query
from meshkp.errors import InvalidPeerRecord, PeerUnreachable, ReplicationError, StoreFull, WireError
from meshkp.keys.commit import (
    DELETED,
    PULLED,
    Committer,
    MergeResult,
    Origin,
    Source,
    join_states,
    joining,
)
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.merkle_index import TOMBSTONES_COUNTER, MerkleIndex, state_hash
from meshkp.keys.pool import WorkerPool
from meshkp.keys.record import KeyRecord, RecordFields
from meshkp.keys.state import Change, KeyState, Prepared
from meshkp.limits import Limits
from meshkp.net.identity import NodeIdentity
from meshkp.net.peerkeys import PeerKeys
from meshkp.net.stats import NetStats
from meshkp.replication.antientropy import SyncOutcome, SyncRound
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.consistency import gather_acks, required_acks
from meshkp.replication.deletes import DeleteOutcome, conflict_fingerprints, hlc_to_int, tombstone
from meshkp.replication.load import LoadBoard
from meshkp.replication.load_wire import LoadReport
from meshkp.replication.messages import (
    ACK_CHANGED,
    ACK_UNCHANGED,
    DiffAnswer,
    DiffQuery,
    Fetch,
    Message,
    PushAck,
    PushBatch,
    RecordBatch,
    Scan,
    ScanBatch,
    SnapshotRead,
    SyncError,
)
from meshkp.replication.peers import Channel, PeerRef, PeerSource
from meshkp.replication.prepare import prepare, prepare_batch
from meshkp.replication.push import Pusher
from meshkp.replication.snapshot import Bootstrap, read_page
from meshkp.replication.status import PeerSyncStatus, ReplicationCounters, SyncProgress
from meshkp.replication.validate import (
    AdminTable,
    lift_allowed,
    parse_peer_record,
    peer_fields,
    proof_signers,
    proving_admins,
)
from meshkp.store.layout import FINGERPRINT_LENGTHS
from meshkp.store.protocol import Store

log = logging.getLogger(__name__)

# Push lag samples kept for status (the Prometheus histogram keeps the full distribution).
_LAG_SAMPLES = 256
# Poll period while a node has no live peer yet (a new node waiting for membership).
_NO_PEER_POLL_S = 0.5
# A received batch of at most this many record bytes, arriving while the store's writer is
# idle, is checked, prepared and joined in its commit job on the writer thread: one thread hop
# instead of two (a thread to check, then the writer), which on a 10-node mesh of processes
# sharing 2 cores was ~3 ms of each receiver's ~8 (docs/benchmarks.md). Larger batches are
# checked first, in a thread or the worker pool, while the writer commits others. A push of a
# new write is one key: a few hundred bytes to a few dozen KB.
IN_COMMIT_BYTES = 64 * 1024


class _CheckOnLoop(Exception):
    """A batch examined in its commit job holds a tombstone whose signers must be checked on the
    event loop (PeerKeys is the loop's): nothing was written; it takes the two-hop path."""


class Replicator:
    """Replication of one node's store with its peers; constructing it does no I/O."""

    def __init__(
        self,
        store: Any,  # meshkp.store.executor.AsyncStore
        node_id: str,
        committer: Committer,
        config: ReplicationConfig,
        peers: PeerSource,
        channel: Channel,
        *,
        pool: WorkerPool | None = None,
        diff_config: DiffConfig | None = None,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        identity: NodeIdentity | None = None,
        peer_keys: PeerKeys | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        # Signs this node's deletes; peers refuse tombstones no node signed (deleteproof.py).
        self.identity = identity
        # The node's id -> key directory (shared with its transports): the signers of a peer's
        # tombstone must be the nodes they claim to be. None: only the signatures are checked.
        self.peer_keys = peer_keys
        # The applied policy's admin keys (PolicyState), set by the node once its policy runs:
        # a peer's standing tombstone must be signed by one. None, or a table without keys (no
        # policy applied yet): the node signatures alone are checked.
        self.admin_table: Callable[[], AdminTable] | None = None
        self.committer = committer
        self.config = config.validate()
        self.peers = peers
        self.loop_failures = 0  # anti-entropy rounds that raised (event=sync_loop_bug)
        self.channel = channel
        self.pool = pool  # the node's worker pool (not ours to close); None: threads only
        self.diff_config = diff_config or DiffConfig()
        self.rng = rng or random.Random()
        self.wall = wall
        self.hlc = HybridLogicalClock.from_seconds(wall)
        self.counters = ReplicationCounters()
        self.pusher = Pusher(config, peers, channel, self.read_pairs, self.counters, self.rng, wall)
        committer.observe(self.pusher.on_commit)
        # Snapshot bootstrap of an empty node (snapshot.py); with every record to be verified,
        # an empty node pulls them through the validated path instead.
        self.bootstrap: Bootstrap | None = None
        if self.config.snapshot_bootstrap and self.config.verify_peer_records != "all":
            self.bootstrap = Bootstrap(store, committer, channel, self.config.request_timeout_s,
                                       self.apply_pulled, self.counters)
        self.statuses: dict[str, PeerSyncStatus] = {}
        self.progress: SyncProgress | None = None
        self.lag_observer: Callable[[float], None] | None = None
        # The load summaries of this node and its peers (GET /cluster/load), exchanged here.
        self.loads = LoadBoard()
        # Set by the node wiring: the transport's frame counters and the listener's address.
        self.net_stats: NetStats | None = None
        self.sync_addr: tuple[str, int] | None = None
        # The diff version each peer that refused a newer one speaks (antientropy.py).
        self._peer_diff_versions: dict[str, int] = {}
        self._sync_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        # Peers that came back (from dead) since the last round; synced with first, in order.
        self._returned: list[str] = []

    @property
    def limits(self) -> Limits:
        """The node's current policy (the committer holds it)."""
        return self.committer.limits

    @property
    def merkle(self) -> MerkleIndex:
        return self.committer.merkle

    # -- store access ------------------------------------------------------------------------

    async def read_records(self, fingerprints: Sequence[bytes]) -> list[bytes]:
        """Current encoded records of these fingerprints (missing ones left out)."""
        return [data for _, data in await self.read_pairs(fingerprints)]

    async def read_pairs(self, fingerprints: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """(fingerprint, encoded record) of these fingerprints, missing ones left out."""
        fps = list(fingerprints)

        def read(store: Store) -> list[tuple[bytes, bytes]]:
            return [(fp, data) for fp in fps if (data := store.get(fp)) is not None]

        result: list[tuple[bytes, bytes]] = await self.store.read(read)
        return result

    async def _in_thread(self, fn: Callable[[], object]) -> object:
        return await self.store.read(lambda _store: fn())

    def _raw_store(self) -> Store:
        raw: Store = self.store.store
        return raw

    async def _merge(self, states: Sequence[KeyState], source: Source = PULLED) -> MergeResult:
        """Commit the join of `states` with the stored ones (one batch)."""
        return await self.committer.run(self.store, joining(states), source)

    # -- receiving ---------------------------------------------------------------------------

    async def handle(self, sender: str | None, message: Message) -> Message | None:
        """Answer one request from a peer (errors become SyncError replies, never raise)."""
        try:
            if isinstance(message, PushBatch):
                return await self._on_push(sender, message)
            if isinstance(message, DiffQuery):
                return await self._on_diff(message)
            if isinstance(message, Fetch):
                return await self._on_fetch(message)
            if isinstance(message, Scan):
                return await self._on_scan(message)
            if isinstance(message, LoadReport):
                return self.loads.handle(sender, message, time.monotonic())
            if isinstance(message, SnapshotRead):
                return await self._on_snapshot_read(message)
        except InvalidPeerRecord as exc:
            self.counters.batches_rejected += 1
            log.warning("event=peer_batch_rejected peer=%s error=%s", sender, exc)
            return SyncError(f"batch rejected, nothing stored: {exc}")
        except (CrdtError, ReplicationError) as exc:
            log.info("event=peer_request_refused peer=%s error=%s", sender, exc)
            return SyncError(str(exc))
        except StoreFull as exc:  # not acknowledged: the sender keeps it and anti-entropy retries
            log.debug("event=peer_request_refused peer=%s error=%s", sender, exc)
            return SyncError(str(exc))
        self.counters.batches_rejected += 1
        return SyncError(f"{type(message).__name__} is not a request")

    async def _on_push(self, sender: str | None, batch: PushBatch) -> PushAck:
        self.counters.records_received += len(batch.records)
        mode = self.config.verify_peer_records
        verify = mode == "all" or (mode == "push" and batch.forward)
        # The pusher forwards what this changed, from the commit (forward-while-new).
        source = Source(Origin.PUSH, sender, batch.forward, batch.relay, batch.origin_ts)
        statuses, result = await self.receive_records(batch.records, verify, source)
        # `sender` is the frame's verified signer (meshkp/net/frameauth.py), never a claim.
        log.debug("event=push_received peer=%s records=%d changed=%d", sender,
                  len(batch.records), len(result.changes))
        for change in result.changes:
            _log_received_delete(change, sender)
        if result.changes:
            self.counters.records_applied += len(result.changes)
            if batch.origin_ts:
                self._observe_lag(max(0.0, self.wall() - batch.origin_ts))
        return PushAck(tuple(statuses))

    def _observe_lag(self, lag: float) -> None:
        samples = self.counters.lag_samples
        samples.append(lag)
        if len(samples) > _LAG_SAMPLES:
            del samples[: len(samples) - _LAG_SAMPLES]
        if self.lag_observer is not None:
            self.lag_observer(lag)

    async def receive_records(
        self, records: Sequence[bytes], verify: bool, source: Source = PULLED
    ) -> tuple[list[int], MergeResult]:
        """Validate and merge peer records: all or nothing (InvalidPeerRecord for the batch).

        Each record is unpacked once and decoded at most once: a record of the exact state
        held here (a re-sent push) is recognised by its Merkle leaf and skipped; one of a key
        held in another state is checked here and joined with the stored state, whose index
        terms the join computes; one of a key new here is prepared (checked and indexed) in
        the worker pool when the batch is large, and stored from its prepared bytes and terms.
        A small batch arriving while the writer is idle (a push of a new write) is all of that
        in its commit job (IN_COMMIT_BYTES).
        """
        # Small batches (pushes) are prepared in the one thread hop that examines them.
        to_pool = (self.pool is not None and self.pool.enabled
                   and len(records) >= self.config.prepare_min_batch)
        if (not to_pool and getattr(self.store, "writing_alone", False)
                and sum(map(len, records)) <= IN_COMMIT_BYTES):
            try:
                return await self._receive_in_commit(records, verify, source)
            except _CheckOnLoop:
                pass
        limits = self.limits
        raw = self._raw_store()
        try:
            examined = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._examine(raw, records, limits, verify, to_pool))
            new = [(data, item) for data, item in zip(records, examined, strict=True)
                   if isinstance(item, list)]
            prepared = iter(await prepare_batch(
                [data for data, _ in new], limits, verify, self.pool,
                self.config.prepare_min_batch, [fields for _, fields in new],
            ) if new else [])
        except InvalidPeerRecord:
            self.counters.records_rejected += 1
            raise
        states = [next(prepared) if isinstance(item, list) else item
                  for item in examined if item is not None]
        self._check_delete_signers(states)
        result = await self._merge(states, source) if states else MergeResult()
        return _statuses(examined, result), result

    def _examine(self, store: Store, records: Sequence[bytes], limits: Limits, verify: bool,
                 to_pool: bool) -> list[KeyState | RecordFields | None]:
        """Per record (in a thread): None if held in that exact state (its Merkle leaf), its
        fields if new here and `to_pool` (prepared in the worker pool next), else its checked
        state (Prepared if new here). InvalidPeerRecord if one fails a check."""
        tree = self.merkle.tree(store)
        found: list[KeyState | RecordFields | None] = []
        for data in records:
            fields = peer_fields(data)
            fingerprint = fields[1]
            leaf = tree.get(fingerprint) if len(fingerprint) in FINGERPRINT_LENGTHS else None
            if leaf is None:
                found.append(fields if to_pool else prepare(data, limits, verify, fields))
            elif leaf == state_hash(data):
                found.append(None)  # held
            else:
                found.append(parse_peer_record(data, limits, verify, fields))
        return found

    async def _receive_in_commit(
        self, records: Sequence[bytes], verify: bool, source: Source
    ) -> tuple[list[int], MergeResult]:
        """receive_records in one commit job: examined, checked and joined on the writer thread
        (the store's view then also sees writes staged in the same group). _CheckOnLoop, with
        nothing written, if a tombstone's signers need checking."""
        examined: list[KeyState | RecordFields | None] = []

        def decide(store: Store, limits: Limits) -> MergeResult:
            examined.extend(self._examine(store, records, limits, verify, to_pool=False))
            states = [item for item in examined if isinstance(item, (KeyRecord, Prepared))]
            if self.peer_keys is not None and any(_tombstoned(state) for state in states):
                raise _CheckOnLoop
            return join_states(store, states, limits) if states else MergeResult()

        try:
            result = await self.committer.run(self.store, decide, source)
        except InvalidPeerRecord:
            self.counters.records_rejected += 1
            raise
        return _statuses(examined, result), result

    def _check_delete_signers(self, states: Sequence[KeyState]) -> None:
        """InvalidPeerRecord (the batch) if a tombstone's signer is not the node it names, or
        if a standing delete is signed by no admin our admin table knows."""
        admins = self.admin_table() if self.admin_table is not None else None
        if admins is not None and not admins.has_admin_keys:
            admins = None
        if self.peer_keys is None and admins is None:
            return
        for state in states:
            if isinstance(state, Prepared) and not state.deleted and not state.conflict:
                continue  # no standing tombstone: nothing to prove (decoding is skipped)
            record = state.key_record() if isinstance(state, Prepared) else state
            keys = self.peer_keys
            for node, key in proof_signers(record.tombstone) if keys is not None else ():
                if keys is not None and not keys.bind(node, key):
                    self.counters.records_rejected += 1
                    raise InvalidPeerRecord(
                        f"tombstone of {record.fingerprint.hex()} is signed in {node!r}'s name "
                        "by a key that is not that node's")
            if admins is not None and record.deleted and not proving_admins(record.tombstone,
                                                                             admins):
                self.counters.records_rejected += 1
                raise InvalidPeerRecord(
                    f"tombstone of {record.fingerprint.hex()} is signed by no admin this node's "
                    "admin table names (a node vouching alone, an older node, or a policy "
                    "behind: refused until an admin's signature or our policy catches up)")
            tomb = record.tombstone
            if (admins is not None and tomb is not None and tomb.lifted is not None
                    and not lift_allowed(tomb, admins)):
                self.counters.records_rejected += 1
                raise InvalidPeerRecord(
                    f"tombstone of {record.fingerprint.hex()} is lifted with no admin's "
                    "signature, and this node's rule for its reason is not update-wins")

    async def apply_pulled(self, records: Sequence[bytes]) -> int:
        """Merge records fetched by anti-entropy; the number that changed our state."""
        self.counters.records_received += len(records)
        _, result = await self.receive_records(records, self.config.verify_peer_records == "all")
        self.counters.records_applied += len(result.changes)
        return len(result.changes)

    async def _on_diff(self, query: DiffQuery) -> DiffAnswer | SyncError:
        tree = self.merkle.tree(self._raw_store())
        responder = (ReconResponder(tree) if is_recon_query(query.data)
                     else DiffResponder(tree, self.diff_config))

        def answer(_store: Store) -> bytes:
            return responder.handle(query.data)

        try:
            data: bytes = await self.store.read(answer)
        except DiffProtocolError as exc:  # a bad query: counted, refused, nothing changed
            self.counters.batches_rejected += 1
            log.warning("event=diff_query_refused error=%s", exc)
            return SyncError(str(exc))
        return DiffAnswer(data)

    async def _on_fetch(self, fetch: Fetch) -> RecordBatch:
        budget = self.config.batch_bytes
        wanted = list(fetch.fingerprints)

        def read(store: Store) -> RecordBatch:
            found: list[bytes] = []
            used = 0
            for position, fingerprint in enumerate(wanted):
                data = store.get(fingerprint)
                if data is None:
                    continue
                if found and used + len(data) > budget:
                    return RecordBatch(tuple(found), tuple(wanted[position:]))
                found.append(data)
                used += len(data)
            return RecordBatch(tuple(found))

        batch: RecordBatch = await self.store.read(read)
        return batch

    async def _on_scan(self, scan: Scan) -> ScanBatch:
        budget = self.config.batch_bytes
        # The smallest key after `after`: fingerprints compare as byte strings.
        start = scan.after + b"\x00" if scan.after else b""

        def read(store: Store) -> ScanBatch:
            found: list[bytes] = []
            used = 0
            last = b""
            total = len(self.merkle.tree(store))
            for fingerprint, data in store.iter_records(start):
                if found and (len(found) >= scan.limit or used + len(data) > budget):
                    return ScanBatch(tuple(found), last, total)
                found.append(data)
                used += len(data)
                last = fingerprint
            return ScanBatch(tuple(found), b"", total)

        batch: ScanBatch = await self.store.read(read)
        return batch

    async def _on_snapshot_read(self, request: SnapshotRead) -> Message:
        if self.bootstrap is not None and await self.bootstrap.copying_records():
            # Our own copy is unfinished: records without their index entries yet, which a
            # copy of us would keep for good (its diff compares records only). An empty node
            # with a cursor answers: it has nothing to lose, and two of them must not wait on
            # each other.
            return SyncError(f"{self.node_id} is bootstrapping itself; copy another peer")
        budget = self.config.batch_bytes

        def read(store: Store) -> Message:
            return read_page(store, request, budget)

        page: Message = await self.store.read(read)
        return page

    async def _wants_snapshot(self) -> bool:
        """Whether the next round copies a peer's store: empty here, or a copy unfinished."""
        if self.bootstrap is None:
            return False
        if await self.bootstrap.cursor() is not None:
            return True
        return await self.store.read(lambda store: len(self.merkle.tree(store)) == 0)  # type: ignore[no-any-return]

    async def _copy_snapshot(self, peer: PeerRef, meter: Any, far_behind: bool) -> int | None:
        """A snapshot bootstrap from `peer` if this node wants one (empty, one unfinished, or
        `far_behind`: a diff estimated that it lacks much of what the peer holds)."""
        if self.bootstrap is None or not (far_behind or await self._wants_snapshot()):
            return None
        try:
            return await self.bootstrap.run(peer, meter, await self.bootstrap.cursor())
        except (PeerUnreachable, ReplicationError) as exc:
            if self.bootstrap.pages_read:
                raise
            # Not one page: a peer of an older version drops the request unanswered, or one
            # bootstrapping itself refused (or it is down, and the rest of the round fails the
            # same way). The round goes on as without a snapshot: a scan, or the diff.
            log.info("event=snapshot_unavailable peer=%s action=sync error=%s", peer.node_id, exc)
            return None

    # -- anti-entropy ------------------------------------------------------------------------

    async def sync_with(self, peer: PeerRef) -> SyncOutcome | None:
        """One anti-entropy round with `peer`; None if it failed (recorded in its status)."""
        async with self._sync_lock:
            status = self.statuses.get(peer.node_id)
            if status is None:
                status = self.statuses[peer.node_id] = PeerSyncStatus(peer.node_id)
            status.addr = f"{peer.addr[0]}:{peer.addr[1]}"
            self.progress = SyncProgress(peer.node_id, started=self.wall())
            round_ = SyncRound(
                self.config, self.diff_config, self.merkle.tree(self._raw_store()), self.channel,
                self.pusher, self._in_thread, self.apply_pulled, self.read_records, self.progress,
                self._copy_snapshot if self.bootstrap is not None else None,
                self._peer_diff_versions,
            )
            self.counters.sync_rounds += 1
            status.rounds += 1
            started = time.monotonic()
            outcome: SyncOutcome | None = None
            try:
                outcome = await round_.run(peer)
            except (PeerUnreachable, WireError, ReplicationError, InvalidPeerRecord, StoreFull) as exc:
                # StoreFull: this node's disk is full (logged once by the store); the next
                # round after space returns pulls what this one could not store.
                self.counters.sync_errors += 1
                status.errors += 1
                status.last_result = f"error: {exc}"
                log.info("event=sync_failed peer=%s error=%s", peer.node_id, exc)
            finally:
                meter = round_.meter
                self.counters.bytes_out += meter.sent
                self.counters.bytes_in += meter.received
                status.last_sync_time = self.wall()
                status.last_duration_s = time.monotonic() - started
                status.last_bytes_sent, status.last_bytes_received = meter.sent, meter.received
                status.bytes_sent += meter.sent
                status.bytes_received += meter.received
                status.last_keys_pulled = self.progress.pulled
                status.last_keys_pushed = self.progress.pushed
                self.progress = None
            if outcome is not None:
                status.last_result = "in_sync" if outcome.in_sync else "synced"
                if outcome.refused:
                    status.last_result += f" ({outcome.refused} refused records)"
                status.keys_pulled += outcome.keys_pulled
                status.keys_pushed += outcome.keys_pushed
                if not outcome.in_sync:
                    log.info(
                        "event=synced peer=%s pulled=%d pushed=%d bytes_out=%d bytes_in=%d s=%.3f",
                        peer.node_id, outcome.keys_pulled, outcome.keys_pushed,
                        outcome.meter.sent, outcome.meter.received, outcome.duration_s,
                    )
            return outcome

    async def sync_now(self, node_id: str | None = None) -> list[dict[str, object]]:
        """Anti-entropy now with one peer (by node id) or with every live peer."""
        peers = self.peers.alive_peers()
        if node_id is not None:
            peers = [p for p in peers if p.node_id == node_id]
            if not peers:
                raise ReplicationError(f"no live peer with node id {node_id!r}")
        results = []
        for peer in peers:
            await self.sync_with(peer)
            results.append(self.statuses[peer.node_id].to_json())
        return results

    async def repair(self) -> dict[str, object]:
        """Rebuild the Merkle tree and counters from the records, then sync with every peer."""
        records, tombstones = await self.store.run_exclusive(self.merkle.rebuild)
        synced = await self.sync_now()
        return {"records": records, "tombstones": tombstones, "synced": synced}

    async def _loop(self) -> None:
        if not await self._wants_snapshot():  # a new node starts copying at once
            await asyncio.sleep(self.config.first_sync_delay_s)
        while True:
            # Everything a round does is inside the try, the membership view included: any
            # exception escaping here would end anti-entropy for the life of the process.
            # Cleared before the round, not after: a kick (a returned peer) that arrives while a
            # round runs must still cut the pause that follows it.
            self._kick.clear()
            try:
                peers = self.peers.alive_peers()
                if not peers:
                    await self._pause(_NO_PEER_POLL_S)
                    continue
                await self.sync_with(self._returned_peer(peers) or self.rng.choice(peers))
            except Exception:  # the loop must log and go on (STYLE.md §11)
                self.loop_failures += 1
                log.exception("event=sync_loop_bug failures=%d", self.loop_failures)
            jitter = self.config.sync_jitter
            await self._pause(self.config.sync_interval_s * self.rng.uniform(1 - jitter, 1 + jitter))

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._kick.wait()
        except TimeoutError:
            pass

    def kick(self) -> None:
        """Start the next anti-entropy round now (e.g. a new peer appeared)."""
        self._kick.set()

    def peer_returned(self, node_id: str) -> None:
        """A peer came back (a partition healed, a node restarted): sync with it now.

        Both sides took writes the other has not seen; waiting for the random pick of the next
        round could leave them apart for several sync intervals. Each returned peer gets one
        round, in the order they came back; a peer that returns again while queued is queued once.
        """
        if node_id not in self._returned:
            self._returned.append(node_id)
        self.kick()

    def _returned_peer(self, peers: list[PeerRef]) -> PeerRef | None:
        by_id = {p.node_id: p for p in peers}
        while self._returned:
            peer = by_id.get(self._returned.pop(0))
            if peer is not None:
                return peer
        return None

    # -- deletes and conflicts ---------------------------------------------------------------

    async def delete(self, fingerprint: bytes, reason: str, actor: str,
                     audit: bool = False,
                     admin: nacl.signing.SigningKey | None = None) -> DeleteOutcome:
        """Tombstone a key here (known here or not); the pusher pushes the tombstone to peers.
        With `audit`, the same batch queues it for the audit trail (deletes.py); `admin` is
        the key of the admin who asked (meshkp/keys/adminkey.py), which signs it too."""
        stamp = self.hlc.now()
        decide = tombstone(fingerprint, self.node_id, hlc_to_int(stamp.wall_ms, stamp.logical),
                           reason, actor, audit, self.identity, admin)
        outcome = DeleteOutcome.of(fingerprint, await self.committer.run(self.store, decide, DELETED))
        log.info("event=key_deleted fingerprint=%s actor=%s reason=%r existed=%s",
                 fingerprint.hex(), actor, reason, outcome.existed)
        return outcome

    async def conflicts(self, limit: int = 1000) -> list[KeyRecord]:
        """Records in conflict (an add concurrent with a delete), at most `limit`."""

        def read(store: Store) -> list[KeyRecord]:
            found = []
            for fingerprint in conflict_fingerprints(store, limit):
                data = store.get(fingerprint)
                if data is not None:
                    record = KeyRecord.decode(data)
                    if record.conflict is not None:
                        found.append(record)
            return found

        result: list[KeyRecord] = await self.store.read(read)
        return result

    # -- consistency -------------------------------------------------------------------------

    @property
    def consistency_timeout_s(self) -> float:
        return self.config.consistency_timeout_s

    async def wait_for(self, fingerprints: Sequence[bytes], level: str) -> tuple[int, int]:
        """(acks incl. self, acks needed) of these keys at `level`, waiting up to the timeout.

        Call it right after the write that changed them: what the write queued for a peer is
        counted when that push is acknowledged, not pushed again (consistency.gather_acks).
        """
        needed = required_acks(level, self.peers.cluster_size())
        if needed <= 1:
            return 1, needed
        acked = await gather_acks(self.pusher, self.peers.alive_peers(), fingerprints, needed,
                                  self.config.consistency_timeout_s)
        return acked, needed

    # -- status ------------------------------------------------------------------------------

    async def status(self) -> dict[str, object]:
        """The GET /cluster/sync/status document."""

        def read(store: Store) -> tuple[str, int, int, int, int]:
            tree = self.merkle.tree(store)
            conflicts = len(conflict_fingerprints(store, 100_000))
            return (tree.root().hex(), len(tree), store.counter(KEYS_COUNTER),
                    store.counter(TOMBSTONES_COUNTER), conflicts)

        root, records, keys, tombstones, conflicts = await self.store.read(read)
        return {
            "node_id": self.node_id,
            "merkle_root": root,
            "records": records,
            "keys": keys,
            "tombstones": tombstones,
            "conflicts": conflicts,
            "sync_interval_s": self.config.sync_interval_s,
            "syncing": self.progress.to_json() if self.progress is not None else None,
            "bootstrapping": self.bootstrapping() or bool(
                self.progress is not None and records == 0 and self.progress.to_pull),
            "bootstrap": self.bootstrap_status(),
            "peers": {node: s.to_json() for node, s in sorted(self.statuses.items())},
            "push": {
                "pending": self.pusher.pending(),
                "oldest_pending_s": round(self.pusher.oldest_pending_age(), 3),
                "queues": {node: len(q) for node, q in sorted(self.pusher.queues.items())},
            },
            "counters": self.counters.to_json(),
            "sync_addr": f"{self.sync_addr[0]}:{self.sync_addr[1]}" if self.sync_addr else None,
            "net": self.net_stats.snapshot() if self.net_stats is not None else None,
        }

    def bootstrapping(self) -> bool:
        """Whether a snapshot bootstrap is copying a peer's store into this node now."""
        return self.bootstrap is not None and self.bootstrap.progress is not None

    def bootstrap_status(self) -> dict[str, object] | None:
        """The running snapshot bootstrap (peer, phase, rows copied), None when there is none."""
        progress = self.bootstrap.progress if self.bootstrap is not None else None
        return progress.to_json() if progress is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    async def check_tree(self) -> None:
        """Rebuild the tree if it does not cover the records (e.g. keys bulk-loaded offline)."""

        def read(store: Store) -> tuple[int, int]:
            return (len(self.merkle.tree(store)),
                    store.counter(KEYS_COUNTER) + store.counter(TOMBSTONES_COUNTER))

        in_tree, counted = await self.store.read(read)
        if self.bootstrap is not None and await self.bootstrap.cursor() is not None:
            return  # an unfinished bootstrap: it rebuilds the tree when its copy is done
        if in_tree != counted:
            log.warning("event=merkle_incomplete in_tree=%d records=%d action=rebuild",
                        in_tree, counted)
            await self.store.run_exclusive(self.merkle.rebuild)

    async def start(self) -> None:
        """Check the tree and start the anti-entropy loop (idempotent)."""
        if self._task is not None:
            return
        await self.check_tree()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="anti-entropy")

    async def stop(self) -> None:
        """Stop the loop and the push senders (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.pusher.close()


def _statuses(examined: Sequence[object], result: MergeResult) -> list[int]:
    """The PushAck status of each examined record (None: held already) after the join."""
    changed = iter(result.changed)
    return [ACK_UNCHANGED if item is None or not next(changed) else ACK_CHANGED
            for item in examined]


def _tombstoned(state: KeyState) -> bool:
    """Whether a received state carries a tombstone (whose signers must then be checked)."""
    if isinstance(state, Prepared):  # its flags say whether a tombstone stands (no decoding)
        return state.deleted or state.conflict
    return state.tombstone is not None


def _log_received_delete(change: Change, sender: str | None) -> None:
    """The audit line of a delete that reached us: who pushed it, and who proved they made it."""
    state, before = change.after, change.before
    if not state.deleted or (before is not None and before.deleted):
        return
    after = state.key_record() if isinstance(state, Prepared) else state
    if after.tombstone is None:
        return
    tomb = after.tombstone
    signers = ",".join(sorted({p.node for p in tomb.proofs})) or "-"
    admins = ",".join(sorted({p.admin_key[:8].hex() for p in tomb.proofs if p.admin_key})) or "-"
    log.info("event=delete_received fingerprint=%s actor=%r signed_by=%r admin_keys=%s peer=%s "
             "reason=%r", after.fingerprint.hex(), tomb.actor, signers, admins, sender,
             tomb.reason)
