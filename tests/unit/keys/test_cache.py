"""The read-path caches: bounds, LRU order, invalidation, and the epoch guard against races."""

from __future__ import annotations

from meshkp.keys.cache import ServedCache, ServedKey, TermCache
from meshkp.store.protocol import IndexKind


def entry(n: int, size: int = 100) -> ServedKey:
    return ServedKey(bytes([n]) * 20, b"x" * size)


def test_served_cache_is_bounded_lru() -> None:
    cache = ServedCache(max_bytes=1500)  # five entries of 300 bytes (100 + overhead)
    for n in range(6):
        cache.put(entry(n), cache.epoch)
    assert cache.bytes <= 1500
    assert cache.get(entry(0).fingerprint) is None  # oldest evicted
    assert cache.get(entry(4).fingerprint) is not None
    assert cache.hits == 1 and cache.misses == 1


def test_a_fill_that_raced_a_write_is_dropped() -> None:
    cache = ServedCache(max_bytes=10_000)
    epoch = cache.epoch  # a reader starts
    cache.invalidate([entry(1).fingerprint])  # a write commits meanwhile
    cache.put(entry(1), epoch)  # the reader's (stale) result
    assert cache.get(entry(1).fingerprint) is None
    cache.put(entry(1), cache.epoch)
    assert cache.get(entry(1).fingerprint) is not None


def test_invalidate_drops_the_key_and_its_bytes() -> None:
    cache = ServedCache(max_bytes=10_000)
    cache.put(entry(1), cache.epoch)
    cache.invalidate([entry(1).fingerprint])
    assert len(cache) == 0 and cache.bytes == 0


def test_grew_accounts_for_lazily_filled_fields() -> None:
    cache = ServedCache(max_bytes=10_000)
    item = entry(1)
    cache.put(item, cache.epoch)
    before = item.size()
    item.armored = b"a" * 500
    cache.grew(item, before)
    assert cache.bytes == item.size()


def test_huge_entries_are_not_cached() -> None:
    cache = ServedCache(max_bytes=1000)
    cache.put(entry(1, size=900), cache.epoch)
    assert len(cache) == 0


def test_term_cache_invalidation_by_term() -> None:
    terms = TermCache(max_entries=3)
    a, b = (IndexKind.EMAIL, b"a@x"), (IndexKind.KEYWORD, b"b")
    terms.put(a, 10, (b"f1",), terms.epoch)
    terms.put(a, 100, (b"f1",), terms.epoch)
    terms.put(b, 10, (b"f2",), terms.epoch)
    terms.invalidate([a])
    assert terms.get(a, 10) is None and terms.get(a, 100) is None
    assert terms.get(b, 10) == (b"f2",)
    stale = terms.epoch - 1
    terms.put(a, 10, (b"old",), stale)
    assert terms.get(a, 10) is None


def test_term_cache_is_bounded() -> None:
    terms = TermCache(max_entries=2)
    for n in range(5):
        terms.put((IndexKind.KEYWORD, bytes([n])), 10, (), terms.epoch)
    assert len(terms) == 2
