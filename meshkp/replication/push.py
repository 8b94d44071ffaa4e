"""Push gossip: per-peer bounded queues of fingerprints, batched sends, one batch in flight.

The pusher observes the node's commits (meshkp/keys/commit.py): a key changed by an upload or
a delete here is queued for `origin_fanout` peers, one received in a push that asks to be
relayed for `fanout` more, and anti-entropy pulls and bulk loads for none. A changed key is
queued for peers chosen at random from the live membership; each
peer has one sender task that drains its queue in batches and waits for the ack before the
next batch (backpressure: a slow peer slows only its own queue). Queues hold fingerprints,
not records: the record is read at send time, so a key changed twice while queued is sent
once in its newest state (coalescing), and memory per queued key is a few dozen bytes. A full
queue drops its oldest entry and counts it; a batch that fails is dropped whole (and the
queue cleared if the peer is unreachable). Anti-entropy repairs whatever was dropped.
"At send time" means from the newest commit's own bytes when the pusher still holds them
(recent.py), else from the store: a write pushed to n peers is not read back n times.

x-consistency (consistency.py) waits on these same pushes: `AckWatch`es registered with the
pusher hear which peer acknowledged or lost which keys, so a quorum write is pushed once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from meshkp.errors import PeerUnreachable, WireError
from meshkp.keys.commit import Commit, Origin
from meshkp.replication.config import ReplicationConfig
from meshkp.replication.messages import ACK_REJECTED, PushAck, PushBatch, SyncError
from meshkp.replication.peers import ByteMeter, Channel, PeerRef, PeerSource
from meshkp.replication.recent import RecentRecords
from meshkp.replication.status import ReplicationCounters

log = logging.getLogger(__name__)

# (fingerprint, encoded record) of each fingerprint that has a record, in order.
ReadPairs = Callable[[Sequence[bytes]], Awaitable[list[tuple[bytes, bytes]]]]


class AckWatch(Protocol):
    """Hears what became of pushed keys (consistency.py's AckWait)."""

    since: int  # only batches taken from a queue after this one count (see Pusher.taken)

    def acked(self, node_id: str, fingerprints: Iterable[bytes]) -> None: ...

    def lost(self, node_id: str, fingerprints: Iterable[bytes]) -> None: ...


class PeerQueue:
    """Fingerprints waiting for one peer, oldest first, coalesced, at most `limit`.

    Each entry carries its origin time and whether the peer should relay it (see
    PushBatch.relay); a key queued twice keeps its first position, its earliest time, and
    is relayed if either enqueue asked for it.
    """

    def __init__(self, limit: int, on_drop: Callable[[bytes], None] | None = None) -> None:
        self.limit = limit
        self.on_drop = on_drop
        self._items: OrderedDict[bytes, tuple[float, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, fingerprint: bytes) -> bool:
        return fingerprint in self._items

    def add(self, fingerprint: bytes, origin_ts: float, relay: bool = True) -> int:
        """Queue a fingerprint (kept at its first position and time); returns how many dropped."""
        old = self._items.get(fingerprint)
        if old is not None:
            self._items[fingerprint] = (min(old[0], origin_ts), old[1] or relay)
            return 0
        self._items[fingerprint] = (origin_ts, relay)
        dropped = 0
        while len(self._items) > self.limit:
            old_fingerprint, _ = self._items.popitem(last=False)
            dropped += 1
            if self.on_drop is not None:
                self.on_drop(old_fingerprint)
        return dropped

    def take(self, count: int) -> tuple[list[bytes], float, bool]:
        """Up to `count` oldest fingerprints that share the oldest one's relay flag, the
        earliest origin time among them, and that flag (a batch has one)."""
        taken: list[bytes] = []
        oldest = 0.0
        relay = True
        while self._items and len(taken) < count:
            fingerprint, (ts, flag) = next(iter(self._items.items()))
            if taken and flag != relay:
                break
            del self._items[fingerprint]
            relay = flag
            taken.append(fingerprint)
            oldest = ts if not oldest else min(oldest, ts)
        return taken, oldest, relay

    def oldest_ts(self) -> float | None:
        """Origin time of the oldest queued entry."""
        if not self._items:
            return None
        return min(ts for ts, _ in self._items.values())

    def clear(self) -> list[bytes]:
        """Drop every entry; the fingerprints dropped."""
        dropped = list(self._items)
        self._items.clear()
        return dropped


def split_by_bytes(records: Sequence[bytes], budget: int) -> list[list[bytes]]:
    """Consecutive chunks of at most `budget` bytes (a larger single record goes alone)."""
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    used = 0
    for record in records:
        if current and used + len(record) > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(record)
        used += len(record)
    if current:
        chunks.append(current)
    return chunks


class Pusher:
    """Queues changed keys for peers and runs one sender task per non-empty queue."""

    def __init__(
        self,
        config: ReplicationConfig,
        peers: PeerSource,
        channel: Channel,
        read_pairs: ReadPairs,
        counters: ReplicationCounters,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.peers = peers
        self.channel = channel
        self.read_pairs = read_pairs
        self.counters = counters
        self.rng = rng or random.Random()
        self.wall = wall
        self.queues: dict[str, PeerQueue] = {}
        # Batches taken from the queues so far: a batch is numbered when taken, and its records
        # are read after that, so an AckWatch registered at `taken` == n counts only batches
        # numbered above n, which hold what was committed before it registered.
        self.taken = 0
        self._watches: set[AckWatch] = set()
        # The records of the commits whose keys were queued, for the senders (recent.py).
        self.recent = RecentRecords()
        self._refs: dict[str, PeerRef] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def pending(self) -> int:
        """Fingerprints queued over all peers."""
        return sum(len(q) for q in self.queues.values())

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest queued change was accepted (0 when nothing is queued)."""
        oldest = [ts for q in self.queues.values() if (ts := q.oldest_ts())]
        return max(0.0, self.wall() - min(oldest)) if oldest else 0.0

    def _pick(self, candidates: list[PeerRef], fanout: int | None) -> list[PeerRef]:
        """`fanout` random candidates (all if 0)."""
        count = self.config.fanout if fanout is None else fanout
        if count == 0 or len(candidates) <= count:
            return candidates
        return self.rng.sample(candidates, count)

    def on_commit(self, commit: Commit) -> None:
        """Commit observer: queue what a commit changed for the peers that should get it."""
        source = commit.source
        local = source.origin in (Origin.UPLOAD, Origin.DELETE)
        relayed = source.origin is Origin.PUSH and source.forward and source.relay
        # Before queueing: a sender woken by the queue finds the records of this commit.
        self.recent.observe(commit, pushed=local or relayed)
        if local:
            self.enqueue(commit.fingerprints, fanout=self.config.origin_fanout)
        elif relayed:
            # Forward-while-new: only what was new here, never back to the sender.
            exclude = [source.sender] if source.sender else []
            self.enqueue(commit.fingerprints, exclude, source.origin_ts or None)

    def enqueue(
        self,
        fingerprints: Sequence[bytes],
        exclude: Iterable[str] = (),
        origin_ts: float | None = None,
        fanout: int | None = None,
    ) -> list[PeerRef]:
        """Queue changed keys for `fanout` random live peers; returns the peers chosen.

        The receivers are asked to relay what is new to them only if some live peer (besides
        `exclude`, who has the keys) was not chosen: otherwise every peer we know gets them
        from us directly, and relays would only repeat our pushes.
        """
        if self._closed or not fingerprints:
            return []
        skip = set(exclude)
        candidates = [p for p in self.peers.alive_peers() if p.node_id not in skip]
        chosen = self._pick(candidates, fanout)
        relay = len(chosen) < len(candidates)
        for peer in chosen:
            self._queue(peer, fingerprints, origin_ts or self.wall(), relay)
        return chosen

    def push_to(self, peers: Sequence[PeerRef], fingerprints: Sequence[bytes]) -> None:
        """Make sure each peer gets these keys: queue those not already queued for it.

        x-consistency calls it for every live peer, so nobody is asked to relay. A key already
        queued is not queued again (a commit just queued it): it is pushed once.
        """
        if self._closed:
            return
        now = self.wall()
        for peer in peers:
            queue = self.queues.get(peer.node_id)
            missing = [fp for fp in fingerprints if queue is None or fp not in queue]
            if missing:
                self._queue(peer, missing, now, relay=False)

    def watch(self, watch: AckWatch) -> None:
        """Tell `watch` about every batch taken from now on (until unwatch)."""
        watch.since = self.taken
        self._watches.add(watch)

    def unwatch(self, watch: AckWatch) -> None:
        self._watches.discard(watch)

    def _queue(self, peer: PeerRef, fingerprints: Sequence[bytes], ts: float, relay: bool) -> None:
        queue = self.queues.get(peer.node_id)
        if queue is None:
            node_id = peer.node_id
            queue = self.queues[node_id] = PeerQueue(
                self.config.push_queue_max, lambda fp: self._lost(node_id, [fp]))
        self._refs[peer.node_id] = peer
        dropped = sum(queue.add(fp, ts, relay) for fp in fingerprints)
        if dropped:
            self.counters.push_dropped += dropped
            log.debug("event=push_queue_full peer=%s dropped=%d", peer.node_id, dropped)
        self._wake(peer.node_id)

    def _acked(self, node_id: str, batch: int, fingerprints: list[bytes]) -> None:
        for watch in list(self._watches):
            if batch > watch.since:
                watch.acked(node_id, fingerprints)

    def _lost(self, node_id: str, fingerprints: Sequence[bytes], batch: int | None = None) -> None:
        """Tell the watches these keys will not reach the peer (batch None: dropped from its
        queue, which concerns every watch)."""
        for watch in list(self._watches):
            if batch is None or batch > watch.since:
                watch.lost(node_id, fingerprints)

    def _wake(self, node_id: str) -> None:
        task = self._senders.get(node_id)
        if task is None or task.done():
            self._senders[node_id] = asyncio.get_running_loop().create_task(
                self._drain(node_id), name=f"push-{node_id}"
            )

    async def _drain(self, node_id: str) -> None:
        queue = self.queues[node_id]
        while queue and not self._closed:
            peer = self._refs[node_id]
            fingerprints, origin_ts, relay = queue.take(self.config.push_batch_records)
            self.taken += 1
            batch = self.taken
            unsent = set(fingerprints)
            try:
                pairs = await self._pairs(fingerprints)
                sent = 0
                for chunk in split_by_bytes([data for _, data in pairs], self.config.batch_bytes):
                    ack = await self.send(peer, chunk, forward=True, origin_ts=origin_ts,
                                          relay=relay)
                    keys = [fp for fp, _ in pairs[sent:sent + len(chunk)]]
                    sent += len(chunk)
                    unsent.difference_update(keys)
                    statuses = zip(keys, ack.statuses, strict=True)
                    self._acked(node_id, batch, [fp for fp, st in statuses if st != ACK_REJECTED])
            except (PeerUnreachable, WireError) as exc:
                self.counters.push_failures += 1
                cleared = queue.clear() if isinstance(exc, PeerUnreachable) else []
                self._lost(node_id, cleared)
                log.info("event=push_failed peer=%s error=%s dropped_queue=%d",
                         node_id, exc, len(cleared))
            except asyncio.CancelledError:
                raise
            except Exception:  # a background sender must log and go on (STYLE.md §11)
                self.counters.push_failures += 1
                log.exception("event=push_bug peer=%s", node_id)
            finally:
                self._lost(node_id, list(unsent), batch)  # never sent: no record, or failed
        if not queue:
            self.queues.pop(node_id, None)

    async def _pairs(self, fingerprints: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """(fingerprint, record) to push, in order: from the latest commits, else the store."""
        found, missing = self.recent.split(fingerprints)
        if missing:
            found.update(await self.read_pairs(missing))
        return [(fp, data) for fp in fingerprints if (data := found.get(fp)) is not None]

    async def send(
        self,
        peer: PeerRef,
        records: Sequence[bytes],
        forward: bool,
        origin_ts: float = 0.0,
        meter: ByteMeter | None = None,
        timeout: float | None = None,
        relay: bool = True,
    ) -> PushAck:
        """Send one batch and return the peer's ack; PeerUnreachable/WireError on failure."""
        meter = meter or ByteMeter()
        before_sent, before_received = meter.sent, meter.received
        reply = await self.channel.request(
            peer, PushBatch(tuple(records), forward, origin_ts, relay),
            timeout or self.config.request_timeout_s, meter,
        )
        self.counters.bytes_out += meter.sent - before_sent
        self.counters.bytes_in += meter.received - before_received
        if isinstance(reply, SyncError):
            raise WireError(f"{peer.node_id} refused the batch: {reply.reason}")
        if not isinstance(reply, PushAck) or len(reply.statuses) != len(records):
            raise WireError(f"{peer.node_id} answered a push batch with {type(reply).__name__}")
        self.counters.pushes_sent += 1
        return reply

    async def close(self) -> None:
        """Cancel the sender tasks (idempotent)."""
        self._closed = True
        tasks = list(self._senders.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders.clear()
