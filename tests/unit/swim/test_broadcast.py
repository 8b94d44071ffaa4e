"""The piggyback queue: least-sent first, transmit limit, invalidation by key, byte budget."""

import time

from meshkp.swim.broadcast import BroadcastQueue
from meshkp.swim.formulas import retransmit_limit
from meshkp.swim.messages import Alive, Dead, Suspect, part_size


def alive(node: str, inc: int = 1, meta: dict[str, str] | None = None) -> Alive:
    return Alive(node, ("10.0.0.1", 7946), inc, meta or {})


def test_least_sent_first() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=100)
    q.queue("a", alive("a"))
    q.queue("b", alive("b"))
    first = q.get(budget=part_size(alive("a")), n=10)  # room for exactly one
    assert len(first) == 1
    second = q.get(budget=part_size(alive("a")), n=10)
    assert second[0].node != first[0].node  # the unsent one goes next
    q.queue("c", alive("c"))
    assert q.get(budget=part_size(alive("a")), n=10)[0].node == "c"


def test_each_item_is_sent_retransmit_limit_times() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=100)
    q.queue("a", alive("a"))
    limit = retransmit_limit(4, 50)
    sends = 0
    while q.get(budget=1000, n=50):
        sends += 1
        assert sends <= limit
    assert sends == limit == 8
    assert len(q) == 0


def test_limit_follows_cluster_size() -> None:
    for n, expected in [(1, 4), (10, 8), (200, 12)]:
        q = BroadcastQueue(retransmit_mult=4, max_items=10)
        q.queue("a", alive("a"))
        sends = 0
        while q.get(budget=1000, n=n):
            sends += 1
        assert sends == expected


def test_newer_news_about_a_node_replaces_older() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=100)
    q.queue("a", alive("a", 1))
    q.get(budget=1000, n=10)
    q.queue("a", Suspect("a", 1, "b"))
    q.queue("a", Dead("a", 1, "b"))
    assert len(q) == 1
    assert q.transmits("a") == 0  # the replacement starts fresh
    assert q.get(budget=1000, n=10) == [Dead("a", 1, "b")]


def test_get_respects_the_byte_budget_and_skips_what_does_not_fit() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=1000)
    big = alive("big", meta={"pad": "x" * 300})
    q.queue("big", big)
    for i in range(100):
        q.queue(f"n{i}", alive(f"n{i}"))
    budget = 1000
    out = q.get(budget=budget, n=100)
    assert sum(part_size(m) for m in out) <= budget
    assert out[0] == big  # among unsent items, larger first: it packs better
    small_only = q.get(budget=part_size(big) - 1, n=100)
    assert big not in small_only and small_only


def test_nothing_fits_in_a_tiny_budget() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=10)
    q.queue("a", alive("a"))
    assert q.get(budget=3, n=10) == []
    assert q.transmits("a") == 0


def test_queue_is_bounded_dropping_the_most_sent() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_items=3)
    q.queue("old", alive("old"))
    q.get(budget=1000, n=10)  # "old" now has one transmit
    for name in ("x", "y", "z"):
        q.queue(name, alive(name))
    assert len(q) == 3
    assert "old" not in q


def test_a_flood_of_news_stays_bounded_without_sorting_on_every_insert() -> None:
    # A push-pull may carry 10,000 new members, each queued as news. Sorting the full queue on
    # every insert past the bound blocked the event loop for seconds (~12 s for this flood).
    q = BroadcastQueue(retransmit_mult=4, max_items=4096)
    start = time.perf_counter()
    for i in range(20_000):
        q.queue(f"n{i}", alive(f"n{i}"))
        assert len(q) <= 4096
    elapsed = time.perf_counter() - start
    assert "n19999" in q and "n0" not in q  # the oldest unsent news goes first
    assert elapsed < 3.0, f"queueing 20,000 items took {elapsed:.1f} s"
