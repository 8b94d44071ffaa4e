"""SimCluster: N production MembershipServices on a SimNetwork, in simulated time.

Each SimNode is one process: the real driver (meshkp/membership/service.py, with its protocol
timer, join with retries, push-pull and leave) over a SimTransport, with its own ProcessClock on
the cluster's FakeClock. Everything runs on one SimEventLoop, whose time is that FakeClock, so
minutes of cluster time take seconds and no result depends on the speed of the machine.
`SimCluster` adds what a test needs: start, crash, restart, pause, partition, and predicates
over every node's view (tests/sim, bench/swim_sim.py). Close it (or use it as a context
manager) to stop the drivers and the loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from meshkp.clock import FakeClock
from meshkp.membership.config import MembershipConfig
from meshkp.membership.service import MembershipService
from meshkp.net.addr import Addr, format_addr
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.sim.codec import DEFAULT_KEY, make_codec
from meshkp.sim.loop import SimEventLoop
from meshkp.sim.network import SimNetwork
from meshkp.sim.process import ProcessClock
from meshkp.sim.transport import SimTransport
from meshkp.swim.config import SwimConfig
from meshkp.swim.protocol import Swim
from meshkp.swim.types import MemberInfo, Status

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Event:
    """A status change as seen by one observer."""

    at: float
    observer: str
    node: str
    old: Status | None
    new: Status


class SimNode:
    """One simulated process: a MembershipService on a SimTransport and a ProcessClock."""

    def __init__(self, service: MembershipService, transport: SimTransport,
                 process: ProcessClock, loop: SimEventLoop) -> None:
        self.service = service
        self.transport = transport
        self.process = process
        self.node_id = service.node_id
        self.addr = transport.addr
        self.crashed = False
        self._loop = loop
        self._core: Swim | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def swim(self) -> Swim:
        """The node's core; after a crash, the state it died with."""
        if self._core is None:
            raise RuntimeError(f"{self.node_id} was never started")
        return self._core

    def start(self) -> None:
        self._loop.run_until_complete(self.service.start())
        self._core = self.service.swim

    def leave(self) -> None:
        """Begin a graceful leave (MembershipService.leave) as the simulation runs on."""
        self.spawn(self.service.leave())

    def stop(self) -> None:
        """Crash: the process and its coroutines are gone at once, without a leave."""
        if self.crashed:
            return
        self.crashed = True
        for task in self._tasks:
            task.cancel()
        self._loop.run_until_complete(self._stop())

    async def _stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.service.stop()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` in this process (cancelled if it crashes); the task is kept."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class SimCluster:
    """A seeded cluster of SimNodes sharing one FakeClock, SimEventLoop and SimNetwork."""

    def __init__(
        self,
        config: SwimConfig | None = None,
        seed: int = 0,
        *,
        loss: float = 0.0,
        delay: float = 0.0005,
        jitter: float = 0.0005,
        duplicate: float = 0.0,
        sealed: bool = True,
    ) -> None:
        self.config = config or SwimConfig.lan()
        # Real NaCl sealing (meshkp.net.crypto) costs ~10% more CPU than the key-tag stand-in.
        self.sealed = sealed
        self.seed = seed
        self.clock = FakeClock()
        self.loop = SimEventLoop(self.clock)
        self.net = SimNetwork(self.clock, seed, loss=loss, delay=delay, jitter=jitter,
                              duplicate=duplicate, frame_limit=self.config.udp_frame_bytes)
        self.rng = random.Random(seed ^ 0x5EED)
        self.nodes: dict[str, SimNode] = {}
        self.events: list[Event] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._addrs: dict[str, Addr] = {}
        # One identity per node id for the whole run: a restarted node keeps its key, as a
        # real node keeps DATA_DIR/node.key (a new key under a pinned id would be refused).
        self.identities: dict[str, NodeIdentity] = {}

    def __enter__(self) -> SimCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node's driver and close the loop (idempotent)."""
        if self.loop.is_closed():
            return
        for node in self.nodes.values():
            node.stop()
        self.loop.close()

    # --- building -----------------------------------------------------------------------------

    @staticmethod
    def addr_for(index: int) -> Addr:
        return (f"10.{index // 62500 % 256}.{index // 250 % 250}.{index % 250 + 1}", 7946)

    def add_node(
        self,
        node_id: str | None = None,
        *,
        seeds: Iterable[Addr] = (),
        keys: Sequence[bytes] = (DEFAULT_KEY,),
    ) -> SimNode:
        """Start a node now (re-using the address of an earlier node with this id); it joins
        `seeds` as a real node joins its `--join` list, in the background."""
        node_id = node_id or f"node-{len(self._addrs)}"
        addr = self._addrs.setdefault(node_id, self.addr_for(len(self._addrs)))
        old = self.nodes.get(node_id)
        if old is not None and not old.crashed:
            raise ValueError(f"{node_id} is running; crash it before restarting")
        process = ProcessClock(self.clock)
        identity = self.identities.setdefault(node_id, NodeIdentity.generate(node_id))
        # Frames carry the simulated time as their sender's wall time (one clock for all).
        auth = FrameAuth(identity, wall=self.clock.now)
        transport = SimTransport(self.net, addr, make_codec(keys, self.sealed, auth), process,
                                 on_resume=process.resume)
        config = MembershipConfig(bind_host=addr[0], gossip_port=addr[1],
                                  join=tuple(format_addr(s) for s in seeds), swim=self.config)
        service = MembershipService(config, identity, Keyring(keys),
                                    clock=process, transport=transport,
                                    rng=random.Random(self.rng.getrandbits(64)), auth=auth)

        def record(member: MemberInfo, old: Status | None, new: Status) -> None:
            self.record(Event(self.clock.now(), node_id, member.node_id, old, new))

        service.add_listener(record)
        node = SimNode(service, transport, process, self.loop)
        self.nodes[node_id] = node
        node.start()
        return node

    def start(self, n: int, stagger: float = 1.0) -> list[SimNode]:
        """node-0 founds the cluster; the others join it at random times within `stagger`."""
        first = self.add_node()
        for _ in range(1, n):
            self.run(self.rng.uniform(0, stagger / max(1, n - 1)))
            self.add_node(seeds=[first.addr])
        return list(self.nodes.values())

    # --- faults -------------------------------------------------------------------------------

    def crash(self, node_id: str) -> None:
        self.nodes[node_id].stop()

    def restart(self, node_id: str, seeds: Iterable[Addr] | None = None) -> SimNode:
        """A crashed node comes back on the same address, with a fresh process state."""
        if seeds is None:
            seeds = [n.addr for n in self.running() if n.node_id != node_id][:3]
        return self.add_node(node_id, seeds=seeds)

    def pause(self, node_id: str) -> None:
        """SIGSTOP: the process neither reads its socket nor runs its timers until resume()."""
        node = self.nodes[node_id]
        self.net.pause(node.addr)
        node.process.pause()

    def resume(self, node_id: str) -> None:
        """SIGCONT: buffered frames are read first, then the timers that fell due run."""
        addr = self.nodes[node_id].addr

        async def resume() -> None:  # the node's driver code runs, so inside the loop
            self.net.resume(addr)

        self.loop.run_until_complete(resume())

    def partition(self, *groups: Iterable[str]) -> None:
        self.net.partition(*([self.nodes[i].addr for i in g] for g in groups))

    def heal(self) -> None:
        self.net.heal()

    # --- running and observing ----------------------------------------------------------------

    def run(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass (every node's timers, frames and tasks run)."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def run_until(self, predicate: Callable[[], bool], timeout: float,
                  step: float = 0.1) -> float | None:
        """Advance in `step`s until predicate() holds; the simulated seconds it took, or None."""
        start = self.clock.now()
        while True:
            if predicate():
                return self.clock.now() - start
            if self.clock.now() - start >= timeout:
                return None
            self.run(step)

    def record(self, event: Event) -> None:
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def running(self) -> list[SimNode]:
        """Nodes neither crashed nor paused."""
        return [n for n in self.nodes.values()
                if not n.crashed and not self.net.is_paused(n.addr)]

    def view(self, node_id: str) -> dict[str, Status]:
        return {m.node_id: m.status for m in self.nodes[node_id].swim.members()}

    def sees(self, observer: str, node_id: str, status: Status) -> bool:
        m = self.nodes[observer].swim.member(node_id)
        return m is not None and m.status == status

    def all_see(self, node_id: str, status: Status, observers: Iterable[SimNode] | None = None,
                ) -> bool:
        """Every running node other than `node_id` itself has it in `status`."""
        return all(self.sees(o.node_id, node_id, status)
                   for o in (observers if observers is not None else self.running())
                   if o.node_id != node_id)

    def converged(self, alive: Iterable[str] | None = None) -> bool:
        """Every running node sees exactly `alive` (default: the running nodes) as alive."""
        nodes = self.running()
        expected = set(alive) if alive is not None else {n.node_id for n in nodes}
        for n in nodes:
            seen = {m.node_id for m in n.swim.members() if m.status == Status.ALIVE}
            if seen != expected:
                return False
        return True

    def false_deaths(self, truly_failed: Iterable[str] = ()) -> list[Event]:
        """DEAD declarations about nodes that were running at the time (false positives)."""
        failed = set(truly_failed)
        return [e for e in self.events if e.new == Status.DEAD and e.node not in failed]
