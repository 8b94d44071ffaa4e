"""ReplyCache: whole lookup replies, bounded by entries and by body bytes."""

from __future__ import annotations

from meshkp.http.replycache import Reply, ReplyCache


def reply(size: int, epoch: tuple[int, int] = (0, 0)) -> Reply:
    return Reply(epoch, until=100.0, body=bytes(size), content_type="text/plain", op="get")


def test_bodies_are_bounded_by_bytes_whatever_the_query_strings() -> None:
    # A client can vary the query string at will (unknown variables are ignored), and a
    # several-key op=get builds a new body per reply: entries alone do not bound memory.
    cache = ReplyCache(max_entries=10_000, max_bytes=1000)
    for n in range(1000):
        cache.put(f"op=get&search=common&x={n}", reply(100))
        assert cache.bytes <= 1000
    assert sum(len(r.body) for r in cache._replies.values()) == cache.bytes
    assert cache.get("op=get&search=common&x=999", (0, 0), 0.0) is not None


def test_a_reply_over_a_quarter_of_the_budget_is_not_kept() -> None:
    cache = ReplyCache(max_entries=10, max_bytes=1000)
    cache.put("small", reply(10))
    cache.put("huge", reply(251))
    assert cache.get("huge", (0, 0), 0.0) is None
    assert cache.get("small", (0, 0), 0.0) is not None


def test_replacing_an_entry_accounts_its_old_body() -> None:
    cache = ReplyCache(max_entries=10, max_bytes=1000)
    for _ in range(20):
        cache.put("same", reply(200))
    assert cache.bytes == 200 and len(cache) == 1
    assert cache.get("same", (0, 1), 0.0) is None  # another epoch: stale
