"""Probe messages bound to the node that sent them (issue 12), sim tier.

Mallory (tests/sim/forger.py) holds the cluster key and an identity of her own. She reads every
ping the members send to node-1 (she holds the key) and answers each at once with an ack that
names node-1, signed as herself, to keep a crashed node-1 alive; and she sends pings, ping-reqs
and a push-pull that name another member as their source. Before acks were bound to their
sender, her acks kept node-1 alive for as long as she kept answering.
"""

from __future__ import annotations

from meshkp.net.addr import Addr
from meshkp.sim.codec import DEFAULT_KEY
from meshkp.swim.messages import Ack, Ping, PingReq, PushPull, unbundle
from meshkp.swim.types import Status
from tests.sim.conftest import MakeCluster
from tests.sim.forger import MALLORY, Forger, peek, started


def test_acks_forged_for_a_crashed_node_do_not_keep_it_alive(sim: MakeCluster) -> None:
    cluster = started(sim, 3, seed=31)
    n1_addr = cluster.nodes["node-1"].addr
    mallory = Forger(cluster.clock.now)
    forged = 0

    def ack_for_node1(src: Addr, dst: Addr, data: bytes) -> None:
        nonlocal forged
        if dst != n1_addr or src == MALLORY:
            return
        for m in unbundle(peek([DEFAULT_KEY], data)):
            if isinstance(m, Ping):  # a probe, a relayed probe or a final probe of node-1
                forged += 1
                cluster.net.inject(MALLORY, src, mallory.frame(Ack(m.seq, "node-1")))

    cluster.net.taps.append(ack_for_node1)
    cluster.crash("node-1")
    watchers = [cluster.nodes["node-0"], cluster.nodes["node-2"]]
    # LAN profile, 3 nodes: declared dead in ~7 s; her acks kept it alive for good before.
    assert cluster.run_until(lambda: cluster.all_see("node-1", Status.DEAD, watchers),
                             timeout=30.0) is not None, "forged acks kept node-1 alive"
    assert forged > 0
    assert sum(n.swim.stats.acks_refused for n in watchers) > 0


def test_acks_relayed_by_a_helper_still_count(sim: MakeCluster) -> None:
    """The binding keeps indirect probes: with the link between node-0 and node-1 broken (both
    ways), the acks node-2 relays (sent by node-2, which was asked) keep each alive to the other."""
    cluster = started(sim, 3, seed=32)
    n0, n1 = cluster.nodes["node-0"], cluster.nodes["node-1"]
    cut = {(n0.addr, n1.addr), (n1.addr, n0.addr)}
    whole = cluster.net.reachable
    cluster.net.reachable = lambda a, b: (a, b) not in cut and whole(a, b)  # type: ignore[method-assign]
    start = cluster.clock.now()
    cluster.run(30.0)
    assert n0.swim.stats.indirect_probes > 0 and n1.swim.stats.indirect_probes > 0
    suspected = [e for e in cluster.events if e.at >= start and e.new != Status.ALIVE]
    assert suspected == []
    assert n0.swim.stats.acks_refused == n1.swim.stats.acks_refused == 0


def test_pings_ping_reqs_and_push_pulls_in_another_nodes_name_are_dropped(
        sim: MakeCluster) -> None:
    cluster = started(sim, 3, seed=33)
    mallory = Forger(cluster.clock.now)
    n0, n1 = cluster.nodes["node-0"], cluster.nodes["node-1"]
    before = {n.node_id: n.swim.stats.probes for n in cluster.running()}
    ping = Ping(7, "node-0", "node-1", MALLORY)
    req = PingReq(8, "node-2", cluster.nodes["node-2"].addr, "node-1", MALLORY, nack=True)
    cluster.net.inject(MALLORY, n0.addr, mallory.frame(ping))
    cluster.net.inject(MALLORY, n0.addr, mallory.frame(req))
    push = PushPull("node-1", join=True, reply=False, members=())
    cluster.net.inject_tcp(MALLORY, n0.addr, mallory.frame(push, 1 << 20))
    # Her own ping, in her own name, is answered as any ping is (the control case).
    own = Ping(9, "node-0", "mallory", MALLORY)
    replies: list[Ack] = []

    def reply_to_mallory(src: Addr, dst: Addr, data: bytes) -> None:
        if dst == MALLORY:
            replies.extend(m for m in unbundle(peek([DEFAULT_KEY], data)) if isinstance(m, Ack))

    cluster.net.taps.append(reply_to_mallory)
    cluster.net.inject(MALLORY, n0.addr, mallory.frame(own))
    cluster.run(1.0)
    stats = n0.service.stats
    assert stats.dropped[("udp", "identity")] == 2
    assert stats.dropped[("tcp", "identity")] == 1
    assert [a.seq for a in replies] == [9]  # the forged ping got no answer, hers did
    assert n1.swim.stats.probes >= before["node-1"]
    assert cluster.converged()
