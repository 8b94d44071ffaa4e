"""The piggyback queue (memberlist TransmitLimitedQueue, SWIM §4.1 infection-style dissemination).

Membership news is not sent on its own: it rides on pings, acks and gossip frames. The queue
hands out the least-sent news first (fresh news spreads fastest), sends each item at most
retransmit_mult * ceil(log10(n + 1)) times, and keeps one item per key (node id), so newer news
about a node replaces older news about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshkp.swim.formulas import retransmit_limit
from meshkp.swim.messages import Message, part_size


@dataclass(slots=True)
class _Item:
    key: str
    message: Message
    size: int
    transmits: int
    order: int  # submission counter: newer items win ties


class BroadcastQueue:
    """Transmit-limited, keyed queue of messages to piggyback."""

    def __init__(self, retransmit_mult: int, max_items: int) -> None:
        self._mult = retransmit_mult
        self._max = max_items
        self._items: dict[str, _Item] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def queue(self, key: str, message: Message) -> None:
        """Add news about `key`; it invalidates (replaces) anything queued about the same key."""
        self._counter += 1
        self._items.pop(key, None)
        self._items[key] = _Item(key, message, part_size(message), 0, self._counter)
        if len(self._items) > self._max:
            self._prune()

    def transmits(self, key: str) -> int | None:
        """How many times the item for `key` has been handed out, or None if it is not queued."""
        item = self._items.get(key)
        return None if item is None else item.transmits

    def get(self, budget: int, n: int) -> list[Message]:
        """Up to `budget` bytes of news (as counted by part_size), least-sent and largest first.

        Each returned item counts one transmission; items that reach the retransmit limit for a
        cluster of n members leave the queue.
        """
        if not self._items or budget <= 0:
            return []
        limit = max(1, retransmit_limit(self._mult, n))
        # memberlist order: fewest transmits, then larger first (packs better), then newest.
        ordered = sorted(self._items.values(), key=lambda i: (i.transmits, -i.size, -i.order))
        out: list[Message] = []
        free = budget
        for item in ordered:
            if free < PART_MIN:
                break
            if item.size > free:
                continue
            out.append(item.message)
            free -= item.size
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
        return out

    def clear(self) -> None:
        self._items.clear()

    def _prune(self) -> None:
        # Drop what has been sent most (and, among equals, the oldest): it has done most of its work.
        # Prune a little below the bound (1/16 of it) so that a flood of news (a 10,000-member
        # push-pull) sorts the queue once per max/16 inserts, not once per insert: that made one
        # merge block the event loop for seconds.
        keep = self._max - self._max // 16
        victims = sorted(self._items.values(), key=lambda i: (-i.transmits, i.order))
        for item in victims[: len(self._items) - keep]:
            del self._items[item.key]


# The smallest message part (an Ack) is larger than this; below it no item can fit.
PART_MIN = 4
