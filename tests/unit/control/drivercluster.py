"""A cluster of real ControlPlanes (driver + plane) over a MemoryNetwork, on a SimEventLoop.

The production asyncio code runs unchanged; time is a FakeClock, so seconds of cluster time take
milliseconds. Each node has its own RaftStorage on a MemoryStore, which survives a crash, so a
restart replays what was persisted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from meshkp.clock import FakeClock, sleep
from meshkp.control import ControlConfig, RaftStorage, Role, SetLimits, bootstrap
from meshkp.control.autopilot import Health
from meshkp.control.driver.loop import InlineStorage
from meshkp.control.driver.memory import MemoryNetwork
from meshkp.control.driver.plane import ControlPlane
from meshkp.control.policy.commands import Proposal
from meshkp.sim.loop import SimEventLoop
from meshkp.store.memory import MemoryStore

T = TypeVar("T")


class DriverCluster:
    """Nodes n1..nN; n1 founds the cluster, the others join as learners through the autopilot."""

    def __init__(self, size: int, seed: int, config: ControlConfig | None = None,
                 seed_limits: dict[str, int] | None = None) -> None:
        self.config = config or ControlConfig.local()
        self.clock = FakeClock(1000.0)
        self.loop = SimEventLoop(self.clock)
        self.rng = random.Random(seed)
        self.network = MemoryNetwork(self.clock, delay=0.002, rng=random.Random(seed + 1))
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        self.stores = {node: MemoryStore() for node in self.ids}
        self.storages = {node: RaftStorage(store) for node, store in self.stores.items()}
        self.planes: dict[str, ControlPlane] = {}
        self.alive: set[str] = set()
        self.since: dict[str, float] = {}
        founder = self.storages[self.ids[0]]
        seed_cmd = Proposal(SetLimits(seed_limits or {"search_results": 250}), "bootstrap", self.ids[0])
        founder.initialize(bootstrap(self.ids[0], [seed_cmd.encode()]))
        for node in self.ids:
            self.start(node)

    def health(self) -> dict[str, Health]:
        """What SWIM would say: alive or dead since the last change."""
        return {node: Health(node in self.alive, self.since.get(node, 0.0)) for node in self.ids}

    def start(self, node: str) -> None:
        storage = self.storages[node]
        plane = ControlPlane(node, self.config, InlineStorage(storage), storage.load(),
                             self.network.transport(node), self.clock,
                             rng=random.Random(self.rng.random()), health=self.health,
                             wall_ms=lambda: int(self.clock.now() * 1000))
        self.network.attach(node, plane.driver.receive)
        self.planes[node] = plane
        self.alive.add(node)
        self.since[node] = self.clock.now()
        self.run(self._start(plane))

    async def _start(self, plane: ControlPlane) -> None:
        plane.start()

    def crash(self, node: str) -> None:
        """Stop the node's driver without warning (what it persisted stays)."""
        self.network.detach(node)
        self.run(self.planes[node].stop())
        self.alive.discard(node)
        self.since[node] = self.clock.now()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def advance(self, seconds: float) -> None:
        self.run(sleep(self.clock, seconds))

    def until(self, predicate: Callable[[], bool], limit: float, step: float = 0.01) -> float:
        """Run until predicate() holds; the simulated seconds it took (AssertionError past limit)."""
        start = self.clock.now()
        while not predicate():
            if self.clock.now() - start > limit:
                raise AssertionError(f"not reached within {limit} simulated seconds")
            self.advance(step)
        return self.clock.now() - start

    def leaders(self) -> list[str]:
        return [n for n in self.alive if self.planes[n].core.role is Role.LEADER]

    def leader(self) -> str | None:
        leaders = self.leaders()
        return leaders[0] if len(leaders) == 1 else None

    def voters(self) -> frozenset[str]:
        leader = self.leader()
        return self.planes[leader].core.configuration.voters if leader else frozenset()

    def close(self) -> None:
        for node in list(self.alive):
            self.run(self.planes[node].stop())
        self.loop.close()
