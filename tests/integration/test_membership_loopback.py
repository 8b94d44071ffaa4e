"""MembershipService on real sockets in one process (127.0.0.1, ephemeral ports, test profile):
join, crash detection, graceful leave, and a wrong-key node that never gets in."""

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from meshkp.discovery.mdns import MdnsPeer
from meshkp.errors import ConfigError
from meshkp.membership.config import MembershipConfig
from meshkp.membership.service import MAX_MDNS_JOINS, MembershipService
from meshkp.net.addr import format_addr
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.identity import NodeIdentity
from meshkp.swim.config import SwimConfig
from meshkp.swim.types import Status

pytestmark = pytest.mark.integration

KEY = generate_key()


def node(name: str, join: tuple[str, ...] = (), key: bytes = KEY,
         data_dir: Path | None = None) -> MembershipService:
    cfg = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, join=join,
                           swim=SwimConfig.test())
    return MembershipService(cfg, NodeIdentity.generate(name), Keyring([key]),
                             meta={"http": f"127.0.0.1:{11000 + len(name)}"}, data_dir=data_dir)


async def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def view(svc: MembershipService) -> dict[str, Status]:
    return {m.node_id: m.status for m in svc.members()}


@pytest.fixture
async def started() -> AsyncIterator[list[MembershipService]]:
    nodes: list[MembershipService] = []
    yield nodes
    for n in nodes:
        await n.stop()


async def test_join_crash_leave_and_intruder(started: list[MembershipService],
                                             tmp_path: Path) -> None:
    a = node("a")
    await a.start()
    started.append(a)
    seed = (format_addr(a.gossip_addr),)
    b, c = node("b", seed, data_dir=tmp_path), node("c", seed)
    for n in (b, c):
        await n.start()
        started.append(n)
    everyone = {"a", "b", "c"}
    await eventually(lambda: all({k for k, s in view(n).items() if s == Status.ALIVE} == everyone
                                 for n in (a, b, c)), 10, "3 nodes see each other alive")
    assert a.healthy() and a.status()["counts"] == {"alive": 3, "suspect": 0, "dead": 0,
                                                    "left": 0}
    assert {m.node_id: m.meta["http"] for m in b.members()}["c"] == "127.0.0.1:11001"

    # A node with another cluster key: its frames are dropped, it never enters the view.
    intruder = node("intruder", seed, key=generate_key())
    await intruder.start()
    started.append(intruder)
    await eventually(lambda: a.stats.dropped[("tcp", "decrypt")] >= 1, 10, "intruder counted")
    assert "intruder" not in view(a) and view(intruder).keys() == {"intruder"}
    await intruder.stop()

    # Graceful leave: c says goodbye; the others record "left", not "dead".
    assert await c.leave()
    await c.stop()
    await eventually(lambda: view(a).get("c") == Status.LEFT and view(b).get("c") == Status.LEFT,
                     10, "c seen as left")

    # Crash: b disappears without a word; a declares it dead.
    inc_before, b_addr = b.swim.incarnation, b.gossip_addr
    await b.stop()
    took = await eventually(lambda: view(a).get("b") == Status.DEAD, 15, "b declared dead")
    assert not a.healthy()  # a alone out of {a, b} known and not left
    print(f"detection_s={took:.2f}")

    # b restarts on its data dir: higher incarnation, back to alive.
    same_port = dataclasses.replace(b.config, gossip_port=b_addr[1])
    b2 = MembershipService(same_port, b.identity, Keyring([KEY]), data_dir=tmp_path)
    await b2.start()
    started.append(b2)
    assert b2.swim.incarnation > inc_before
    await eventually(lambda: view(a).get("b") == Status.ALIVE, 10, "b alive again")


def test_a_bad_mdns_cluster_name_is_refused_before_binding() -> None:
    cfg = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, discovery="mdns",
                           cluster_name="two words", swim=SwimConfig.test())
    with pytest.raises(ConfigError, match="cluster name"):
        cfg.validate()


async def test_a_failed_start_leaves_nothing_running() -> None:
    # mDNS pinned to an address no interface has: zeroconf cannot join the group (ENODEV).
    # Before, start() raised but left the sockets bound, the timer task running, and a retried
    # start() returned at once as if it had worked.
    cfg = MembershipConfig(bind_host="127.0.0.1", gossip_port=0, discovery="mdns",
                           mdns_interfaces=("203.0.113.7",), swim=SwimConfig.test())
    svc = MembershipService(cfg, NodeIdentity.generate("a"), Keyring([KEY]))
    before = asyncio.all_tasks()
    with pytest.raises(OSError):
        await svc.start()
    assert not svc.running and svc.members() == []
    assert {t.get_name() for t in asyncio.all_tasks() - before} == set()
    with pytest.raises(ConfigError):
        svc.swim  # noqa: B018 - the property raises when not started


async def test_mdns_announcements_cannot_queue_unbounded_joins(
        started: list[MembershipService]) -> None:
    # mDNS is unauthenticated: a LAN host can announce endless "peers". Each used to start its
    # own join task (one sealed push-pull of our table each), without any bound.
    a = node("a")
    await a.start()
    started.append(a)
    blackhole = socket.socket()  # listens but never accepts: every push-pull waits to time out
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    try:
        port = blackhole.getsockname()[1]
        for i in range(500):
            a._on_mdns_peer(MdnsPeer(f"fake{i}", ("127.0.0.1",), port, None))
        joins = [t for t in asyncio.all_tasks() if t.get_name().startswith("mdns-join-")]
        assert 0 < len(joins) <= MAX_MDNS_JOINS
    finally:
        blackhole.close()
