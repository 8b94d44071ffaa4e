"""Connection hygiene of the HKP listener: a total cap, a per-client cap, keep-alive shedding.

aiohttp accepts every connection and keeps each for as long as its timers allow, so a client
holding hundreds of connections open (slowloris, or 48 stalled 8 MiB uploads: red-team
finding 4) costs file descriptors and buffers that every other client needs. The guard wraps
the listener's protocol factory (`GuardedSite`) and, when a connection opens:
- refuses it when `Limits.http_connections` are open in all (reason "total"), when its
  client (an IPv4 address or IPv6 /64, meshkp/http/clientaddr.py) holds
  `Limits.http_client_connections` already (reason "client"), or when the rate limits banned
  it (reason "banned"; trusted proxies are exempt from both): the refused connection gets a
  503 with Retry-After and is closed at once (a banned client's first few only after
  TARPIT_S, unread, so that its reconnect loop slows down);
- an admitted connection gets a `Connection`, found by the request edge (meshkp/http/edge.py)
  from its requests: the client it comes from (resolved once, here, unless the peer is a
  trusted proxy whose requests each name their own) and the requests it carried. There,
  above 3/4 of the total cap every answer closes its connection rather than keep it alive,
  so idle keep-alive connections give their slots back first, and a connection is closed
  after `Limits.http_connection_requests` answers.
The other bounds are timers of aiohttp's server (meshkp/http/server_limits.py: the request
head and idle keep-alive deadline) and the body deadline of uploads (meshkp/http/uploads.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from meshkp.http.clientaddr import Client, ClientResolver
from meshkp.limits import Limits

log = logging.getLogger(__name__)

# Above this share of http_connections, answers close their connection (no keep-alive).
CROWDED_SHARE = 0.75
# Seconds a banned client's connection is held, unread, before its 503: its reconnect loop
# then runs at (its connection cap) / this, not as fast as the node can accept. Each held
# connection costs a file descriptor, within the client's own cap.
TARPIT_S = 5.0
_REASONS = {
    "total": "this server has too many connections open; retry in a few seconds "
             "(limits.http_connections)\n",
    "client": "this client has too many connections open to this server; close some and "
              "retry (limits.http_client_connections)\n",
    "banned": "this client is banned for a while for too many requests or errors; retry "
              "later (limits.ban_seconds)\n",
}
_REFUSAL = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Retry-After: 5\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n{text}")


class Connection:
    """One admitted connection: who it comes from, and how many requests it carried."""

    __slots__ = ("client", "key", "requests")

    def __init__(self, client: Client | None, key: str) -> None:
        # None: the peer is a trusted proxy, each request names its client (X-Forwarded-For).
        self.client = client
        self.key = key  # the per-client cap's unit (the peer's own key for a trusted proxy)
        self.requests = 0


class ConnectionGuard:
    """Open connections of one listener, in all and per client key."""

    def __init__(self, limits: Callable[[], Limits], resolver: ClientResolver,
                 registry: CollectorRegistry | None = None,
                 banned: Callable[[str], bool] | None = None) -> None:
        self._limits = limits  # read per connection: the cluster policy may replace them
        self.resolver = resolver
        # A client the rate limits banned (meshkp/http/ratelimit.py) is refused at accept:
        # its flood then costs an accept and a close, not an HTTP parse per request.
        self.banned = banned or (lambda _key: False)
        self.total = 0
        self.per_client: Tally[str] = Tally()
        self.connections: dict[asyncio.Protocol, Connection] = {}
        self.refused = Counter("meshkp_http_connections_refused", "HKP connections closed at "
                               "once by the connection caps, by reason (total: "
                               "limits.http_connections; client: http_client_connections; "
                               "banned: a client the rate limits banned)",
                               ["reason"], registry=registry)
        for reason in ("total", "client", "banned"):
            self.refused.labels(reason)
        self.tarpitted: Tally[str] = Tally()
        self._unlogged: Tally[str] = Tally()
        self._logged_at: dict[str, float] = {}
        self.open = Gauge("meshkp_http_connections_open", "HKP connections open now",
                          registry=registry)
        self.open.set_function(lambda: self.total)

    def admit(self, peer: str) -> tuple[str | None, str]:
        """(refusal reason or None, client key) of a new connection from `peer`."""
        limits = self._limits()
        client = self.resolver.peer(peer)
        trusted = client is None
        key = peer if client is None else client.key
        if self.total >= limits.http_connections:
            return "total", key
        if not trusted and self.per_client[key] >= limits.http_client_connections:
            return "client", key
        if not trusted and self.banned(key):
            return "banned", key
        self.total += 1
        self.per_client[key] += 1
        return None, key

    def opened(self, protocol: asyncio.Protocol, peer: str, key: str) -> None:
        """Remember the admitted connection served by `protocol` (aiohttp's, which its requests
        name as `request.protocol`)."""
        self.connections[protocol] = Connection(self.resolver.peer(peer), key)

    def release(self, protocol: asyncio.Protocol, key: str) -> None:
        self.connections.pop(protocol, None)
        self.total -= 1
        self.per_client[key] -= 1
        if self.per_client[key] <= 0:
            del self.per_client[key]

    def note_refusal(self, reason: str, key: str) -> None:
        """Count a refused connection; log at most one line a second per reason (a flood of
        refusals would otherwise cost a log line each)."""
        self.refused.labels(reason).inc()
        self._unlogged[reason] += 1
        now = time.monotonic()
        if now - self._logged_at.get(reason, -1.0) >= 1.0:
            log.warning("event=http_connection_refused reason=%s client=%s open=%d count=%d",
                        reason, key, self.total, self._unlogged[reason])
            self._logged_at[reason] = now
            self._unlogged[reason] = 0

    def tarpit(self, key: str) -> bool:
        """Take one of `key`'s tarpit slots (as many as its connection cap; a quarter of the
        node's in all, so many banned clients cannot take its file descriptors), if free."""
        limits = self._limits()
        if (self.tarpitted[key] >= limits.http_client_connections
                or self.tarpitted.total() >= limits.http_connections // 4):
            return False
        self.tarpitted[key] += 1
        return True

    def untarpit(self, key: str) -> None:
        self.tarpitted[key] -= 1
        if self.tarpitted[key] <= 0:
            del self.tarpitted[key]

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory wrapping `make`'s protocols in the caps."""
        return lambda: _Guarded(self, make())


def _refuse(transport: asyncio.Transport, reason: str) -> None:
    if transport.is_closing():
        return
    text = _REASONS[reason]
    transport.write(_REFUSAL.format(length=len(text.encode()), text=text).encode())
    transport.close()


class _Guarded(asyncio.Protocol):
    """One connection: admitted (delegating to aiohttp's protocol) or refused and closed."""

    __slots__ = ("guard", "inner", "key", "tarpit")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.key: str | None = None  # set once admitted
        self.tarpit: str | None = None  # the client key, while held before its refusal

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        reason, key = self.guard.admit(host)
        if reason is None:
            self.key = key
            self.guard.opened(self.inner, host, key)
            self.inner.connection_made(transport)
            return
        self.guard.note_refusal(reason, key)
        assert isinstance(transport, asyncio.Transport)
        if reason == "banned" and self.guard.tarpit(key):
            # Answer late, reading nothing meanwhile: a banned client's reconnect loop then
            # waits on its few tarpitted connections instead of costing an accept each turn.
            transport.pause_reading()
            self.tarpit = key
            asyncio.get_running_loop().call_later(TARPIT_S, _refuse, transport, reason)
            return
        _refuse(transport, reason)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tarpit is not None:
            self.guard.untarpit(self.tarpit)
            self.tarpit = None
        self._release(exc)

    def _release(self, exc: Exception | None) -> None:
        if self.key is None:
            return
        self.guard.release(self.inner, self.key)
        self.key = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.key is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.key is not None else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through `guard` first."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard,
                 **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start's own work is below
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.factory(server), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
