"""Client connections kept open between requests to the same peer (TcpTransport keep_alive).

A replication push is one small request and reply; opening a TCP connection for each one
costs a handshake, an accept and an admission check on the peer for every write. The server
side already serves any number of frames on one connection (meshkp/net/tcp.py), so a client
may keep the connection of a finished exchange and send its next request on it.

Bounds: at most `per_peer` idle connections per address (one in use per concurrent request;
the rest are closed when returned), each kept for `idle_s`, well under the server's
`idle_timeout` (30 s), so a kept connection is rarely one the server is about to close, and a
peer we stopped talking to gets its slot back soon. A connection the server did close is
noticed when it is used (EOF or reset before any reply) and replaced once by a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from meshkp.net.addr import Addr

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeptConnections:
    """Idle client connections by peer address, newest last."""

    def __init__(self, per_peer: int = 2, idle_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_peer = per_peer
        self.idle_s = idle_s
        self.clock = clock
        self._idle: dict[Addr, list[tuple[Connection, float]]] = {}

    def take(self, addr: Addr) -> Connection | None:
        """A kept connection to `addr` that may still be open, or None (expired ones closed)."""
        kept = self._idle.get(addr)
        now = self.clock()
        while kept:
            (reader, writer), since = kept.pop()
            if now - since <= self.idle_s and not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        self._idle.pop(addr, None)
        return None

    def keep(self, addr: Addr, connection: Connection) -> None:
        """Keep a connection whose exchange ended cleanly; the oldest is closed past the bound."""
        kept = self._idle.setdefault(addr, [])
        kept.append((connection, self.clock()))
        while len(kept) > self.per_peer:
            (_, writer), _since = kept.pop(0)
            writer.close()

    def close_all(self) -> None:
        """Close every kept connection (the transport stops)."""
        for kept in self._idle.values():
            for (_, writer), _since in kept:
                writer.close()
        self._idle.clear()

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._idle.values())
