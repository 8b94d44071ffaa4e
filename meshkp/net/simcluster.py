"""SimCluster: N Swim cores on a SimNetwork, run in simulated time (tests/sim and bench/swim_sim).

`SimNode` is the simulation's driver for one core: it wakes at `Swim.next_deadline()`, feeds
frames to `Swim.handle()` and performs the effects, exactly as the asyncio node driver does with
real sockets. `SimCluster` adds the operations a test needs: start, crash, restart, pause,
partition, and predicates over every node's view.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from meshkp.clock import FakeClock, FakeTimer
from meshkp.net.sim import SimNetwork
from meshkp.net.simcodec import DEFAULT_KEY, make_codec
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import Effect, MemberChanged, ReplyTcp, SendTcp, SendUdp
from meshkp.swim.messages import Message
from meshkp.swim.protocol import Swim
from meshkp.swim.types import Addr, Status

# A core whose next_deadline() never moves past `now` would spin the FakeClock forever.
MAX_TICKS_AT_ONE_INSTANT = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    """A status change as seen by one observer."""

    at: float
    observer: str
    node: str
    old: Status | None
    new: Status


class SimNode:
    """Drives one Swim core from a FakeClock and a SimNetwork."""

    def __init__(self, cluster: SimCluster, swim: Swim, keys: Sequence[bytes]) -> None:
        self.cluster = cluster
        self.swim = swim
        self.addr = swim.addr
        self.node_id = swim.node_id
        self.crashed = False
        self._timer: FakeTimer | None = None
        self._timer_at = float("inf")
        self._last_tick = (-1.0, 0)
        cluster.net.attach(self.addr, self, make_codec(keys, cluster.sealed))
        self._reschedule()

    # --- Endpoint -----------------------------------------------------------------------------

    def on_datagram(self, src: Addr, message: Message) -> None:
        self._apply(self.swim.handle(self.cluster.clock.now(), src, message))

    def on_tcp_request(self, src: Addr, message: Message) -> Message | None:
        effects = self.swim.handle(self.cluster.clock.now(), src, message)
        reply = next((e.message for e in effects if isinstance(e, ReplyTcp)), None)
        self._apply(effects)
        return reply

    def on_tcp_reply(self, src: Addr, message: Message) -> None:
        self._apply(self.swim.handle(self.cluster.clock.now(), src, message))

    def on_resume(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._wake()  # timers that fell due during the pause run now, late, as after SIGCONT

    # --- driving ------------------------------------------------------------------------------

    def join(self, seeds: Iterable[Addr]) -> None:
        self._apply(self.swim.join(self.cluster.clock.now(), seeds))

    def leave(self) -> None:
        self._apply(self.swim.leave(self.cluster.clock.now()))

    def stop(self) -> None:
        self.crashed = True
        if self._timer is not None:
            self._timer.cancel()
        self.cluster.net.detach(self.addr)

    def _apply(self, effects: list[Effect]) -> None:
        net, now = self.cluster.net, self.cluster.clock.now()
        for e in effects:
            if isinstance(e, SendUdp):
                net.send_udp(self.addr, e.addr, e.message)
            elif isinstance(e, SendTcp):
                net.send_tcp(self.addr, e.addr, e.message, self.swim.config.tcp_timeout)
            elif isinstance(e, MemberChanged):
                self.cluster.record(Event(now, self.node_id, e.member.node_id, e.old, e.new))
        self._reschedule()

    def _reschedule(self) -> None:
        if self.crashed:
            return
        due = self.swim.next_deadline()
        if due < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = self.cluster.clock.call_at(due, self._wake)

    def _wake(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        if self.crashed or self.cluster.net.is_paused(self.addr):
            return  # a paused process has no running timers; on_resume() restarts them
        now = self.cluster.clock.now()
        at, count = self._last_tick
        self._last_tick = (now, count + 1 if at == now else 1)
        if self._last_tick[1] > MAX_TICKS_AT_ONE_INSTANT:
            raise RuntimeError(f"{self.node_id}: next_deadline() does not advance at t={now}")
        self._apply(self.swim.tick(now))


class SimCluster:
    """A seeded cluster of SimNodes sharing one FakeClock and SimNetwork."""

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
        self.net = SimNetwork(self.clock, seed, loss=loss, delay=delay, jitter=jitter,
                              duplicate=duplicate, frame_limit=self.config.udp_frame_bytes)
        self.rng = random.Random(seed ^ 0x5EED)
        self.nodes: dict[str, SimNode] = {}
        self.events: list[Event] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._addrs: dict[str, Addr] = {}

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
        incarnation: int = 1,
    ) -> SimNode:
        """Start a node now (re-using the address of an earlier node with this id) and join."""
        node_id = node_id or f"node-{len(self._addrs)}"
        addr = self._addrs.setdefault(node_id, self.addr_for(len(self._addrs)))
        old = self.nodes.get(node_id)
        if old is not None and not old.crashed:
            raise ValueError(f"{node_id} is running; crash it before restarting")
        swim = Swim(self.config, node_id, addr, self.clock.now(), incarnation=incarnation,
                    rng=random.Random(self.rng.getrandbits(64)))
        node = SimNode(self, swim, keys)
        self.nodes[node_id] = node
        node.join(seeds)
        return node

    def start(self, n: int, stagger: float = 1.0) -> list[SimNode]:
        """node-0 founds the cluster; the others join it at random times within `stagger`."""
        first = self.add_node()
        for _ in range(1, n):
            self.clock.advance(self.rng.uniform(0, stagger / max(1, n - 1)))
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
        self.net.pause(self.nodes[node_id].addr)

    def resume(self, node_id: str) -> None:
        self.net.resume(self.nodes[node_id].addr)

    def partition(self, *groups: Iterable[str]) -> None:
        self.net.partition(*([self.nodes[i].addr for i in g] for g in groups))

    def heal(self) -> None:
        self.net.heal()

    # --- running and observing ----------------------------------------------------------------

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def run_until(self, predicate: Callable[[], bool], timeout: float,
                  step: float = 0.1) -> float | None:
        """Advance in `step`s until predicate() holds; the simulated seconds it took, or None."""
        start = self.clock.now()
        while True:
            if predicate():
                return self.clock.now() - start
            if self.clock.now() - start >= timeout:
                return None
            self.clock.advance(step)

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
