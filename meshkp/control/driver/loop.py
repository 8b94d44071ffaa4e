"""RaftDriver: the asyncio loop around one RaftCore (docs/control.md "The core without I/O").

One task runs the Ready loop in the order the Ready fields state: send the leader's appends
(`ready.early`), persist (through a `ControlStorage`, synced when `must_sync`), then send the
other messages, then install a snapshot and apply the
committed entries in order, then `advance`, then compact when `snapshot_due()`. The core is
ticked at `next_deadline()` on an injected Scheduler (SystemClock in the node, a FakeClock in
simulations), so the same driver runs in both. Nothing here blocks the loop: storage runs on
the store's writer thread (ExecutorStorage), sends are fire-and-forget.

An exception in one iteration is logged and counted (`errors`) and the loop goes on: a Ready
whose write failed is retried as a whole (writes are idempotent), and entries already applied
are skipped on the retry, so a transient store error delays the log but never forks it.

The driver does not know what the entries mean: `apply` is the state machine's callback
(meshkp/control/plane.py applies the policy), `on_message` takes the frames that are not Raft
RPCs (ProposeRequest / ProposeReply, which the plane handles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from meshkp.clock import Scheduler, TimerHandle, sleep
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.messages import (
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    Message,
    Refused,
    VoteRequest,
    VoteResponse,
)
from meshkp.control.raft.ready import Ready, SoftState
from meshkp.control.raft.types import Compaction, Entry, Snapshot
from meshkp.control.storage import RaftStorage
from meshkp.errors import StoreFull
from meshkp.store.executor import AsyncStore

log = logging.getLogger("meshkp.control")

RAFT_TYPES = (AppendEntries, AppendResponse, VoteRequest, VoteResponse, InstallSnapshot, Refused)
# After a failed iteration, wait this long before the next one, so that a store that keeps
# failing costs a log line per interval instead of a busy loop.
ERROR_BACKOFF = 0.05
# After an iteration refused for a full disk: space comes back in seconds or minutes, not ms.
FULL_BACKOFF = 1.0


class ControlTransport(Protocol):
    """Best-effort delivery of control messages to another node, by node id.

    `send` never blocks and never raises: a message to an unknown or unreachable node is
    dropped (Raft retries on its own). Incoming messages go to `RaftDriver.receive`.
    """

    def send(self, to: str, message: Message) -> None: ...


class ControlStorage(Protocol):
    """Where the driver persists what a Ready asks (meshkp/control/storage.py on some thread)."""

    async def save(self, ready: Ready) -> None: ...

    async def save_compaction(self, compaction: Compaction) -> None: ...

    async def flush(self) -> None:
        """Wait for writes `save` did not wait for (the driver calls it when it stops)."""


class ExecutorStorage:
    """RaftStorage on the node's store, run on the store's writer thread (the loop never waits
    on an fsync). The control keys are written only by this RaftStorage, and the writer thread
    runs one job at a time, so its direct writes cannot interleave with another control write."""

    def __init__(self, storage: RaftStorage, store: AsyncStore) -> None:
        self.storage = storage
        self.store = store
        self.lazy_failures = 0
        self._lazy: set[asyncio.Future[None]] = set()

    async def save(self, ready: Ready) -> None:
        # Writes must reach the store in Ready order (a later hard state overwrites an earlier
        # one): a commit-index write not yet done is waited for first.
        await self.flush()
        job = self.store.run_exclusive(lambda _view: self.storage.save(ready), sync=ready.must_sync)
        if ready.must_sync or ready.entries or ready.snapshot is not None:
            await job
            return
        # Only the commit index moved: losing it in a crash is harmless (ready.py), and the
        # writer thread runs jobs in submission order, so every later write still follows it.
        # Not waiting for it takes a thread round trip off each commit's path.
        lazy = asyncio.ensure_future(job)
        self._lazy.add(lazy)
        lazy.add_done_callback(self._lazy_done)

    async def flush(self) -> None:
        """Wait until every write handed to the store is done."""
        if self._lazy:
            await asyncio.gather(*self._lazy, return_exceptions=True)

    def _lazy_done(self, job: asyncio.Future[None]) -> None:
        self._lazy.discard(job)
        if not job.cancelled() and job.exception() is not None:
            self.lazy_failures += 1
            log.error("event=raft_commit_index_write_failed error=%r", job.exception())

    async def save_compaction(self, compaction: Compaction) -> None:
        await self.flush()
        await self.store.run_exclusive(lambda _view: self.storage.save_compaction(compaction))


class InlineStorage:
    """RaftStorage called on the loop itself: only for an in-memory Store (simulations)."""

    def __init__(self, storage: RaftStorage) -> None:
        self.storage = storage

    async def save(self, ready: Ready) -> None:
        self.storage.save(ready)

    async def save_compaction(self, compaction: Compaction) -> None:
        self.storage.save_compaction(compaction)

    async def flush(self) -> None:
        return None


class Applier(Protocol):
    """The state machine the driver feeds (ControlPlane)."""

    def install(self, snapshot: Snapshot) -> None:
        """Replace the applied state by a snapshot's (before any entry after it)."""

    def apply(self, entry: Entry) -> None:
        """Apply one committed entry, in log order; never raises for a bad entry."""

    def applied_index(self) -> int:
        """The index of the last entry applied (to skip entries already applied on a retry)."""

    def encode(self) -> bytes:
        """The applied state, encoded for a snapshot."""


class RaftDriver:
    """Runs one RaftCore: `start()`, then `receive`/`propose` from anywhere on the loop."""

    def __init__(
        self,
        core: RaftCore,
        storage: ControlStorage,
        transport: ControlTransport,
        clock: Scheduler,
        applier: Applier,
        on_message: Callable[[str, Message], None] | None = None,
        on_soft_state: Callable[[SoftState], None] | None = None,
    ) -> None:
        self.core = core
        self.storage = storage
        self.transport = transport
        self.clock = clock
        self.applier = applier
        self.on_message = on_message
        self.on_soft_state = on_soft_state
        # Counters (metrics, status, tests).
        self.errors = 0
        self.iterations = 0
        self.snapshots_installed = 0
        self.snapshots_taken = 0
        self._wake = asyncio.Event()
        self._timer: TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: Ready | None = None  # a Ready taken from the core, not yet advanced
        self._saved = False  # whether _pending is durable already
        self._sent = False  # whether its messages went out
        self._sent_early = False  # whether its early messages (ready.early) went out
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="raft-driver")
            self.kick()

    async def stop(self) -> None:
        """Stop the loop after the iteration in progress (its write completes or fails)."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.storage.flush()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- inputs ------------------------------------------------------------------------------

    def kick(self) -> None:
        """Run an iteration soon (after a handle/propose, or a deadline)."""
        self._wake.set()

    def receive(self, sender: str, message: Message) -> None:
        """One decoded control message from `sender` (its authenticated node id)."""
        if self._stopping:
            return
        try:
            if isinstance(message, RAFT_TYPES):
                self.core.handle(self.clock.now(), sender, message)
                self.kick()
            elif self.on_message is not None:
                self.on_message(sender, message)
        except Exception:  # a bug handling one message must not cost the transport its peer
            self.errors += 1
            log.exception("event=raft_driver_message_failed node=%s sender=%s type=%s",
                          self.core.id, sender, type(message).__name__)

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            try:
                await self._iterate()
            except StoreFull:
                # The disk is full (the store logged it once): nothing of this Ready was
                # persisted, so nothing was sent; retry slowly, without a traceback each time.
                self.errors += 1
                await sleep(self.clock, FULL_BACKOFF)
                self._wake.set()
            except Exception:
                self.errors += 1
                log.exception("event=raft_driver_iteration_failed node=%s errors=%d",
                              self.core.id, self.errors)
                await sleep(self.clock, ERROR_BACKOFF)
                self._wake.set()
            self._arm()

    async def _iterate(self) -> None:
        self.iterations += 1
        now = self.clock.now()
        if now >= self.core.next_deadline():
            self.core.tick(now)
        while not self._stopping:
            if self._pending is None:
                if not self.core.has_ready():
                    return
                self._pending, self._saved, self._sent = self.core.ready(), False, False
                self._sent_early = False
            await self._process(self._pending)

    async def _process(self, ready: Ready) -> None:
        if not self._saved:
            if not self._sent_early:
                # The leader's appends go out while its own write runs (ready.py, step 0).
                self._sent_early = True
                for out in ready.messages[:ready.early]:
                    self.transport.send(out.to, out.message)
            if ready.hard_state is not None or ready.entries or ready.snapshot is not None:
                await self.storage.save(ready)
            self._saved = True
        if not self._sent:
            # Sent once only: a retry after a failure below must not resend the messages.
            self._sent = True
            for out in ready.messages[ready.early:]:
                self.transport.send(out.to, out.message)
        if ready.snapshot is not None and ready.snapshot.index > self.applier.applied_index():
            self.applier.install(ready.snapshot)
            self.snapshots_installed += 1
        for entry in ready.committed:
            if entry.index > self.applier.applied_index():
                self.applier.apply(entry)
        if ready.soft_state is not None and self.on_soft_state is not None:
            self.on_soft_state(ready.soft_state)
        self.core.advance(ready)
        self._pending = None
        if self.core.snapshot_due():
            compaction = self.core.compact(self.core.applied, self.applier.encode())
            self.snapshots_taken += 1
            await self.storage.save_compaction(compaction)

    def _arm(self) -> None:
        """Wake at the core's next deadline (a tick), unless stopping."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stopping:
            return
        deadline = self.core.next_deadline()
        if deadline != float("inf"):
            self._timer = self.clock.call_at(deadline, self._wake.set)
