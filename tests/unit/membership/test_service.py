"""MembershipService over a SimTransport, in simulated time: timer, join retries, meta, stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from meshkp.clock import FakeClock
from meshkp.discovery.backoff import RetryPolicy
from meshkp.membership.config import MembershipConfig
from meshkp.membership.service import MembershipService
from meshkp.net.addr import Addr, format_addr
from meshkp.net.crypto import Keyring
from meshkp.net.identity import NodeIdentity
from meshkp.sim.codec import DEFAULT_KEY, make_codec
from meshkp.sim.loop import SimEventLoop
from meshkp.sim.network import SimNetwork
from meshkp.sim.transport import SimTransport
from meshkp.swim.config import SwimConfig
from meshkp.swim.types import Status

A: Addr = ("10.0.0.1", 7946)
B: Addr = ("10.0.0.2", 7946)


class World:
    """One FakeClock, its SimEventLoop and a SimNetwork; nodes use the clock directly."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.loop = SimEventLoop(self.clock)
        self.net = SimNetwork(self.clock)

    def node(self, name: str, addr: Addr, join: tuple[Addr, ...] = (),
             retry: RetryPolicy | None = None) -> MembershipService:
        config = MembershipConfig(join=tuple(format_addr(a) for a in join),
                                  swim=SwimConfig.lan(), retry=retry or RetryPolicy())
        transport = SimTransport(self.net, addr, make_codec([DEFAULT_KEY]), self.clock)
        return MembershipService(config, NodeIdentity.generate(name), Keyring([DEFAULT_KEY]),
                                 clock=self.clock, transport=transport)

    def run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.loop.close()


def test_stop_leaves_no_timer_behind(world: World) -> None:
    a = world.node("a", A)
    world.loop.run_until_complete(a.start())
    world.run(5.0)
    assert world.clock.pending() >= 1  # the protocol timer
    world.loop.run_until_complete(a.stop())
    assert world.clock.pending() == 0
    assert not a.running and a.members() == []


def test_join_retries_with_backoff_until_the_seed_comes_up(world: World) -> None:
    # The seed is not there: each push-pull times out (tcp_timeout, 10 s on the LAN profile)
    # and the next attempt follows the retry policy, all in simulated time.
    b = world.node("b", B, join=(A,), retry=RetryPolicy(base=1.0, cap=4.0))
    world.loop.run_until_complete(b.start())
    world.run(60.0)
    attempts = world.net.stats.tcp_sent
    assert 3 <= attempts <= 6  # 60 s / (10 s timeout + 0.5..4 s backoff)
    assert b.counts()["alive"] == 1

    a = world.node("a", A)
    world.loop.run_until_complete(a.start())
    world.run(20.0)
    assert {m.node_id for m in b.members() if m.status == Status.ALIVE} == {"a", "b"}
    assert {m.node_id for m in a.members() if m.status == Status.ALIVE} == {"a", "b"}
    for node in (a, b):
        world.loop.run_until_complete(node.stop())


def test_update_meta_goes_out_at_once(world: World) -> None:
    a, b = world.node("a", A), world.node("b", B, join=(A,))
    world.loop.run_until_complete(a.start())
    world.loop.run_until_complete(b.start())
    world.run(2.0)
    gossip = SwimConfig.lan().gossip_interval

    def idle_for(node: MembershipService) -> float:
        return node.swim.next_deadline() - world.clock.now()

    # Wait for a moment when neither node has anything to send for a while (no probe, no ack
    # due), so only the gossip that update_meta schedules can carry the news in time.
    for _ in range(1000):
        if min(idle_for(a), idle_for(b)) > 2 * gossip:
            break
        world.run(0.01)
    else:
        pytest.fail("the two nodes were never idle at once")
    a.update_meta({"sync": "10.0.0.1:7947"})
    world.run(gossip + 0.01)  # one gossip round, well before the next probe
    seen = {m.node_id: m.meta for m in b.members()}
    assert seen["a"] == {"sync": "10.0.0.1:7947"}
    for node in (a, b):
        world.loop.run_until_complete(node.stop())


def test_an_exception_in_a_tick_is_logged_and_the_timer_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = world.node("a", A), world.node("b", B, join=(A,))
    world.loop.run_until_complete(a.start())
    world.loop.run_until_complete(b.start())
    world.run(5.0)
    assert a.swim.member("b").status == Status.ALIVE  # type: ignore[union-attr]
    swim = a.swim
    tick = swim.tick
    failed: list[float] = []

    def broken_once(now: float) -> list:  # type: ignore[type-arg]
        if not failed:
            failed.append(now)
            raise RuntimeError("injected bug in the SWIM timer")
        return tick(now)

    swim.tick = broken_once  # type: ignore[method-assign]
    world.loop.run_until_complete(b.stop())  # from now on nothing arrives that would re-arm it
    with caplog.at_level("ERROR"):
        world.run(60.0)
    assert failed and "event=swim_timer_failed" in caplog.text
    assert a.timer_failures == 1
    assert a.swim.member("b").status == Status.DEAD  # type: ignore[union-attr]
    world.loop.run_until_complete(a.stop())
