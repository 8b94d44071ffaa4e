"""PeerLink: one persistent control connection to one peer, fed by a bounded queue.

Raft sends a few small messages per heartbeat to each peer, and a commit takes two of them
(append, then its acknowledgement). A connection per message paid a TCP connect, the
listener's admission and a close on every one of them; a link keeps one connection to its
peer open instead. One task writes the queued messages in order (so, while a connection
lives, a peer receives them in the order they were sent), batching whatever queued up while
the previous write was in flight.

When the connection breaks (the peer closed it, restarted elsewhere, or a write timed out),
the link reconnects with a bounded exponential backoff. Meanwhile at most MAX_QUEUE messages
wait; beyond, the oldest is dropped and counted (`queue_full`): Raft resends on its next
heartbeat, and the newest messages carry the freshest state. A batch whose write failed is
dropped and counted (`send_error`). The listener closes a connection after
`frames_per_connection` frames and when idle for `idle_timeout` (meshkp/net/tcp.py): the link
rotates its connection before the first and closes an idle one before the second, so that
it never writes into a connection the listener has just closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from meshkp.control.raft.messages import Message
from meshkp.errors import MeshkpError
from meshkp.net.addr import Addr, format_addr
from meshkp.net.wire import Frame

log = logging.getLogger("meshkp.control")

# Messages waiting for one peer. A heartbeat round is one message per peer, so this holds a
# few seconds of heartbeats to a peer that is down, and bounds the memory one peer can hold.
MAX_QUEUE = 64
# Seconds to connect, and to write one batch; a later heartbeat supersedes a late message.
CONNECT_TIMEOUT = 0.5
WRITE_TIMEOUT = 0.5
# Reconnect backoff: first wait, doubled up to the last.
BACKOFF_FIRST = 0.02
BACKOFF_MAX = 1.0

Resolve = Callable[[str], Addr | None]
Seal = Callable[[Frame], Awaitable[bytes]]
Sent = Callable[[int], None]  # bytes of one frame written
Dropped = Callable[[str, str, str], None]  # (reason, peer, detail)


class PeerLink:
    """The connection to one peer; `put` never blocks, `close` ends it."""

    def __init__(self, peer: str, resolve: Resolve, seal: Seal, sent: Sent, dropped: Dropped, *,
                 frames_per_connection: int, idle_close: float) -> None:
        self.peer = peer
        self._resolve = resolve
        self._seal = seal
        self._sent = sent
        self._dropped = dropped
        self._rotate_after = frames_per_connection
        self._idle_close = idle_close
        self._queue: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._addr: Addr | None = None
        self._frames = 0  # frames written on the current connection
        self.connects = 0
        # The idle close: one timer per idle stretch (not one per message), re-armed from the
        # last write; it sets _idle_due and wakes the task, which closes the connection.
        self._last_write = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_due = False

    def put(self, message: Message) -> None:
        if len(self._queue) >= MAX_QUEUE:
            old = self._queue.popleft()
            self._dropped("queue_full", self.peer, type(old).__name__)
        self._queue.append(message)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"control-link-{self.peer}")

    async def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            if not self._queue:
                self._wake.clear()
                self._arm_idle()
                await self._wake.wait()
                if self._idle_due:
                    self._idle_due = False
                    if not self._queue:
                        await self._disconnect()  # idle: close before the listener does
                        continue
            try:
                written = await self._write_queued()
            except Exception:  # a bug here must not silence the peer for good
                log.exception("event=control_link_failed peer=%s", self.peer)
                await self._disconnect()
                written = False
            if written:
                backoff = BACKOFF_FIRST
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _arm_idle(self) -> None:
        if self._idle_timer is None and self._writer is not None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_at(self._last_write + self._idle_close, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self._queue:
            return  # busy again: the next idle stretch arms it anew
        if asyncio.get_running_loop().time() < self._last_write + self._idle_close:
            self._arm_idle()  # written since it was armed
            return
        self._idle_due = True
        self._wake.set()

    async def _write_queued(self) -> bool:
        """Write what is queued; False (the link is broken, back off) on failure."""
        addr = self._resolve(self.peer)
        if addr is None:
            while self._queue:
                self._dropped("send_error", self.peer, f"no control address for {self.peer}")
                self._queue.popleft()
            return True
        writer = await self._connected(addr)
        if writer is None:
            return False
        room = self._rotate_after - self._frames
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), room))]
        try:
            frames = [await self._seal(Frame(m.TYPE, m.to_map())) for m in batch]
            for data in frames:
                writer.write(data)
            if writer.transport.get_write_buffer_size():
                # The socket did not take it all at once (a slow peer): wait, bounded. Mostly
                # it did, and there is nothing to wait for (no timer, no turn of the loop).
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.drain()
        except (OSError, TimeoutError, MeshkpError) as exc:
            for m in batch:
                self._dropped("send_error", self.peer, f"{type(m).__name__}: {exc!r}")
            await self._disconnect()
            return False
        for data in frames:
            self._sent(len(data))
        self._last_write = asyncio.get_running_loop().time()
        self._frames += len(batch)
        if self._frames >= self._rotate_after:
            await self._disconnect()
        return True

    async def _connected(self, addr: Addr) -> asyncio.StreamWriter | None:
        """The open connection to `addr` (reconnecting if it broke or moved), or None."""
        reader, writer = self._reader, self._writer
        if writer is not None and reader is not None:
            if addr == self._addr and not reader.at_eof() and not writer.is_closing():
                return writer
            await self._disconnect()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._reader, self._writer = await asyncio.open_connection(addr[0], addr[1])
        except (OSError, TimeoutError) as exc:
            log.debug("event=control_connect_failed peer=%s addr=%s error=%r", self.peer,
                      format_addr(addr), exc)
            return None
        self._addr, self._frames = addr, 0
        self.connects += 1
        return self._writer

    async def _disconnect(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.wait_closed()
