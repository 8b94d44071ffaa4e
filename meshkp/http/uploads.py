"""Reading request bodies under a deadline and a node-wide budget of buffered bytes.

aiohttp buffers a POST body in memory as it arrives and has no body read timeout, so a client
that stops sending just before the end holds its bytes (and its connection) for as long as it
likes. `UploadBudget.read` gives every body read a deadline (Limits.upload_read_seconds) and
reserves its size against two budgets, node-wide and per client address, before reading: when
either is full the request is refused at once with 503 rather than queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from meshkp.errors import Overloaded, RequestTimedOut
from meshkp.http.clientaddr import CLIENT_KEY
from meshkp.limits import Limits

log = logging.getLogger(__name__)

T = TypeVar("T")


class UploadBudget:
    """Bytes of request bodies being read right now, in total and per client address."""

    def __init__(self, limits: Callable[[], Limits]) -> None:
        self._limits = limits  # read per request: the cluster policy may replace the limits
        self.in_use = 0
        self._per_client: Counter[str] = Counter()
        self.refused = 0
        self.timed_out = 0

    async def read(self, request: web.Request, read: Callable[[], Awaitable[T]]) -> T:
        """Run `read()` (which reads the body of `request`) within the budget and deadline."""
        limits = self._limits()
        size = request.content_length
        want = limits.upload_bytes if size is None else min(size, limits.upload_bytes)
        # The client the rate limiter resolved (behind a trusted proxy, the forwarded one).
        resolved = request.get(CLIENT_KEY)
        client = resolved.key if resolved is not None else request.remote or "?"
        node_cap = max(limits.uploads_buffered_bytes, limits.upload_bytes)
        client_cap = max(limits.uploads_buffered_client_bytes, limits.upload_bytes)
        if self.in_use + want > node_cap or self._per_client[client] + want > client_cap:
            self.refused += 1
            log.warning("event=upload_refused reason=buffer_budget client=%s bytes=%d in_use=%d",
                        client, want, self.in_use)
            raise Overloaded("too many uploads are being received right now; retry in a few "
                             "seconds (limits.uploads_buffered_bytes, "
                             "limits.uploads_buffered_client_bytes)")
        self.in_use += want
        self._per_client[client] += want
        try:
            if request.content.is_eof():
                # The whole body is already here (a small upload arrives with its headers):
                # reading it cannot stall, so it needs no deadline, nor a timer on the loop.
                return await read()
            async with asyncio.timeout(limits.upload_read_seconds):
                return await read()
        except TimeoutError:
            self.timed_out += 1
            log.warning("event=upload_timeout client=%s after_s=%d", client,
                        limits.upload_read_seconds)
            raise RequestTimedOut(
                f"the request body did not arrive within {limits.upload_read_seconds} s "
                "(limits.upload_read_seconds)") from None
        finally:
            self.in_use -= want
            self._per_client[client] -= want
            if self._per_client[client] <= 0:
                del self._per_client[client]
