"""MemoryNetwork: control messages between drivers in one process, on an injected Scheduler.

The simulation's ControlTransport: each message is encoded to its wire map and decoded again
(so a field the codec drops shows up in tests), then delivered after `delay` seconds of the
scheduler's time, or dropped when either end is down or the two are cut apart. Seeded loss
keeps runs reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from meshkp.clock import Scheduler
from meshkp.control.raft.messages import Message, decode_message

Receive = Callable[[str, Message], None]


class MemoryNetwork:
    """Who is reachable from whom, and the delivery of messages between them."""

    def __init__(self, clock: Scheduler, *, delay: float = 0.001, loss: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.clock = clock
        self.delay = delay
        self.loss = loss
        self.rng = rng or random.Random(0)
        self._receivers: dict[str, Receive] = {}
        self.down: set[str] = set()
        self._cut: set[frozenset[str]] = set()
        self.delivered = 0
        self.dropped = 0

    def transport(self, node_id: str) -> MemoryTransport:
        return MemoryTransport(self, node_id)

    def attach(self, node_id: str, receive: Receive) -> None:
        self._receivers[node_id] = receive
        self.down.discard(node_id)

    def detach(self, node_id: str) -> None:
        """The node crashed or stopped: nothing reaches it until attached again."""
        self._receivers.pop(node_id, None)
        self.down.add(node_id)

    def cut(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self._cut.clear()

    def isolate(self, group: set[str], everyone: set[str]) -> None:
        """Cut every link between `group` and the rest."""
        for a in group:
            for b in everyone - group:
                self.cut(a, b)

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down and frozenset((a, b)) not in self._cut

    def send(self, sender: str, to: str, message: Message) -> None:
        if not self.reachable(sender, to) or (self.loss and self.rng.random() < self.loss):
            self.dropped += 1
            return
        wire = (message.TYPE, message.to_map())

        def deliver() -> None:
            receive = self._receivers.get(to)
            if receive is None or not self.reachable(sender, to):
                self.dropped += 1
                return
            self.delivered += 1
            receive(sender, decode_message(*wire))

        self.clock.call_later(self.delay, deliver)


class MemoryTransport:
    """One node's end of a MemoryNetwork (a ControlTransport)."""

    def __init__(self, network: MemoryNetwork, node_id: str) -> None:
        self.network = network
        self.node_id = node_id

    def send(self, to: str, message: Message) -> None:
        self.network.send(self.node_id, to, message)
