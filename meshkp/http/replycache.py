"""Whole replies of hot lookups, keyed by the raw query string, valid until the next write.

A repeated `op=get&search=0x...` or `op=index&options=mr&search=...` is then answered without
parsing the query or walking the service: one dict lookup. An entry is valid while the
service's read epoch (bumped by every write) is the one it was computed at, and until its
`until` time (mr flags such as "expired" flip with the clock). The bound is an entry count;
bodies are the bytes objects the service already caches, so an entry costs little more than
its key.
"""

from __future__ import annotations

from dataclasses import dataclass

# Distinct hot query strings remembered. Beyond it the cache is cleared and refills with
# what is hot now: simpler than LRU bookkeeping on every hit, and a hit costs one dict get.
MAX_ENTRIES = 10_000
# Upper bound on an entry's life even without writes, so time-dependent output is refreshed.
MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class Reply:
    epoch: tuple[int, int]
    until: float
    body: bytes
    content_type: str
    op: str  # the HKP op, for the metrics label


class ReplyCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._replies: dict[str, Reply] = {}

    def get(self, key: str, epoch: tuple[int, int], now: float) -> Reply | None:
        reply = self._replies.get(key)
        if reply is None or reply.epoch != epoch or now >= reply.until:
            return None
        return reply

    def put(self, key: str, reply: Reply) -> None:
        if self.max_entries <= 0:
            return
        if len(self._replies) >= self.max_entries:
            self._replies.clear()
        self._replies[key] = reply

    def __len__(self) -> int:
        return len(self._replies)
