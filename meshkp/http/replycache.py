"""Whole replies of hot lookups, keyed by the raw query string, valid until the next write.

A repeated `op=get&search=0x...` or `op=index&options=mr&search=...` is then answered without
parsing the query or walking the service: one dict lookup. An entry is valid while the
service's read epoch (bumped by every write) is the one it was computed at, and until its
`until` time (mr flags such as "expired" flip with the clock). It is bounded by entries and by
body bytes: a single-key op=get body is the armored bytes the service already caches, but a
several-key keyring or an mr index is built for the reply, and a client can vary the query
string freely (unknown variables are ignored), so each such entry holds its own body.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict

# Distinct hot query strings remembered. Beyond it the cache is cleared and refills with
# what is hot now: simpler than LRU bookkeeping on every hit, and a hit costs one dict get.
MAX_ENTRIES = 10_000
# Body bytes held in all (shared bodies counted once per entry, so this over-counts).
MAX_BYTES = 64 * 1024 * 1024
# Upper bound on an entry's life even without writes, so time-dependent output is refreshed.
MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class Reply:
    epoch: tuple[int, int]
    until: float
    body: bytes
    content_type: str
    op: str  # the HKP op, for the metrics label


# The Content-Type header of each content type a reply has (a handful), with its charset for
# text: copied per answer, which is cheaper than aiohttp building it from content_type and
# charset on every hit (~0.35 µs of a cached op=index&options=mr).
_HEADERS: dict[str, CIMultiDict[str]] = {}


def reply_headers(content_type: str) -> CIMultiDict[str]:
    """Fresh headers for a reply of `content_type` (aiohttp adds its own to them)."""
    headers = _HEADERS.get(content_type)
    if headers is None:
        value = f"{content_type}; charset=utf-8" if content_type.startswith("text/") else content_type
        headers = _HEADERS[content_type] = CIMultiDict({"Content-Type": value})
    return headers.copy()


class ReplyCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._replies: dict[str, Reply] = {}
        self._bytes = 0

    def get(self, key: str, epoch: tuple[int, int], now: float) -> Reply | None:
        reply = self._replies.get(key)
        if reply is None or reply.epoch != epoch or now >= reply.until:
            return None
        return reply

    def put(self, key: str, reply: Reply) -> None:
        size = len(reply.body)
        if self.max_entries <= 0 or size > self.max_bytes // 4:
            return  # one huge reply must not flush the others
        old = self._replies.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        if len(self._replies) >= self.max_entries or self._bytes + size > self.max_bytes:
            self._replies.clear()
            self._bytes = 0
        self._replies[key] = reply
        self._bytes += size

    @property
    def bytes(self) -> int:
        """Body bytes held (each entry's body counted, shared or not)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._replies)
