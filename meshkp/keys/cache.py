"""In-memory caches of the read path, invalidated by every record write.

- `ServedCache`: fingerprint -> what lookups serve for that key (binary, armored, index
  entry and its mr lines). A hot op=get then costs a dict lookup: no LevelDB, no armor.
- `TermCache`: index term -> primary fingerprints. A hot search skips the index scan.

Both are LRUs touched only from the event loop thread, so they need no lock. A fill that
raced a write (read started before the write, finished after its invalidation) must not
store the stale value: `epoch` counts invalidations, and a fill carries the epoch its read
started at.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshkp.store.protocol import IndexTerm


@dataclass(slots=True)
class ServedKey:
    """Everything served for one live key. Fields after `binary` are filled on first use."""

    fingerprint: bytes
    binary: bytes
    armored: bytes | None = None
    index: Any = None  # meshkp.openpgp.keyview.KeyView, filled on first op=index
    mr: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def size(self) -> int:
        """Approximate bytes held (the binary, the armor and the rendered mr lines)."""
        return 200 + len(self.binary) + len(self.armored or b"") + len(self.mr or b"") * 3


class ServedCache:
    """LRU of `ServedKey` by primary fingerprint, bounded by approximate bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, ServedKey] = OrderedDict()
        self._bytes = 0
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, fingerprint: bytes) -> ServedKey | None:
        entry = self._entries.get(fingerprint)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(fingerprint)
        return entry

    def put(self, entry: ServedKey, epoch: int) -> None:
        """Store `entry` unless a write invalidated the cache after `epoch` was read."""
        if epoch != self.epoch or self.max_bytes <= 0:
            return
        old = self._entries.pop(entry.fingerprint, None)
        if old is not None:
            self._bytes -= old.size()
        size = entry.size()
        if size > self.max_bytes // 4:
            return  # one huge key must not flush the whole cache
        self._entries[entry.fingerprint] = entry
        self._bytes += size
        self._evict()

    def grew(self, entry: ServedKey, before: int) -> None:
        """Account for lazily filled fields of a cached entry (its size was `before`)."""
        if self._entries.get(entry.fingerprint) is entry:
            self._bytes += entry.size() - before
            self._evict()

    def invalidate(self, fingerprints: Iterable[bytes]) -> None:
        self.epoch += 1
        for fingerprint in fingerprints:
            old = self._entries.pop(fingerprint, None)
            if old is not None:
                self._bytes -= old.size()

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._bytes = 0

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.size()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes


class TermCache:
    """LRU of index term -> primary fingerprints (as the store returned them), by entry count."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[IndexTerm, int], tuple[bytes, ...]] = OrderedDict()
        self._by_term: dict[IndexTerm, set[int]] = {}
        self.epoch = 0
        self.hits = 0
        self.misses = 0

    def get(self, term: IndexTerm, limit: int) -> tuple[bytes, ...] | None:
        key = (term, limit)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return found

    def put(self, term: IndexTerm, limit: int, fingerprints: tuple[bytes, ...], epoch: int) -> None:
        if epoch != self.epoch or self.max_entries <= 0:
            return
        self._entries[(term, limit)] = fingerprints
        self._by_term.setdefault(term, set()).add(limit)
        while len(self._entries) > self.max_entries:
            (old_term, old_limit), _ = self._entries.popitem(last=False)
            limits = self._by_term.get(old_term)
            if limits is not None:
                limits.discard(old_limit)
                if not limits:
                    del self._by_term[old_term]

    def invalidate(self, terms: Iterable[IndexTerm]) -> None:
        self.epoch += 1
        for term in terms:
            for limit in self._by_term.pop(term, ()):
                self._entries.pop((term, limit), None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_term.clear()

    def __len__(self) -> int:
        return len(self._entries)
