"""A node that holds the cluster key but not another node's identity (issue 12), sim tier.

Mallory (tests/sim/forger.py) signs frames as herself, as a real node would. She tries to
declare node-1 dead, to make it leave, to refute for it, to speak under its id, and to replay
captured frames 1 s and 60 s later. Every attempt is dropped and counted; membership is unchanged.
"""

from __future__ import annotations

from meshkp.net.addr import Addr
from meshkp.sim.cluster import SimCluster
from meshkp.sim.codec import DEFAULT_KEY
from meshkp.swim.messages import (
    Alive,
    Compound,
    Dead,
    Leave,
    MemberRecord,
    Message,
    PushPull,
    Suspect,
    unbundle,
)
from meshkp.swim.types import Status
from tests.sim.conftest import MakeCluster
from tests.sim.forger import LAN, MALLORY, Forger, peek, started


def view(cluster: SimCluster) -> dict[str, set[tuple[str, Status, int]]]:
    return {n.node_id: {(m.node_id, m.status, m.incarnation) for m in n.swim.members()}
            for n in cluster.running()}


def statement_drops(cluster: SimCluster) -> int:
    return sum(n.service.stats.dropped[(t, "statement")] for n in cluster.running()
               for t in ("udp", "tcp"))


def test_a_key_holder_cannot_kill_evict_refute_or_speak_for_another_node(
        sim: MakeCluster) -> None:
    cluster = started(sim, 3, seed=21)
    n1 = cluster.nodes["node-1"]
    inc = n1.swim.incarnation
    before = view(cluster)
    mallory = Forger(cluster.clock.now)
    real_key = cluster.identities["node-1"].public_key  # public: anyone may know it
    forged: list[Message] = [
        Dead("node-1", inc, "node-0"),                             # in node-0's name, unsigned
        Dead("node-1", inc, "node-0", sig=bytes(64)),              # ... with a made-up signature
        Leave("node-1", inc + 1),                                  # make it leave
        Alive("node-1", MALLORY, inc + 1, {}, real_key, bytes(64)),  # refute (move it) for it
        Alive("node-1", MALLORY, inc + 1, {}),                     # ... unsigned
        Suspect("node-1", inc, "node-2", sig=bytes(64)),           # suspect in node-2's name
    ]
    for target in ("node-0", "node-2"):
        for message in forged:
            # Mallory's own signature on statements in other names proves nothing.
            data = mallory.codec.pack(message, LAN.udp_frame_bytes)
            cluster.net.inject(MALLORY, cluster.nodes[target].addr, data)
    # Her own Alive under node-1's id, signed with her key: the id is pinned to node-1's key.
    claim = mallory.frame(Alive("node-1", MALLORY, inc + 1, {}, mallory.identity.public_key))
    # A push-pull with node-1 as left: the row's signature is not node-1's.
    push = PushPull("mallory", join=False, reply=False, members=(
        MemberRecord("node-1", n1.addr, inc + 1, Status.LEFT, {}, real_key, bytes(64)),))
    for target in ("node-0", "node-2"):
        cluster.net.inject(MALLORY, cluster.nodes[target].addr, claim)
        cluster.net.inject_tcp(MALLORY, cluster.nodes[target].addr, mallory.frame(push, 1 << 20))
    # Frames that claim to come from node-1 itself, signed by another key.
    as_n1 = Forger(cluster.clock.now, node_id="node-1")
    cluster.net.inject(MALLORY, cluster.nodes["node-0"].addr,
                       as_n1.frame(Leave("node-1", inc + 1)))
    cluster.run(30.0)
    assert view(cluster) == before
    assert n1.swim.incarnation == inc and n1.swim.stats.refutations == 0  # nothing to refute
    assert statement_drops(cluster) == 2 * (len(forged) + 2)
    assert cluster.net.stats.dropped["identity"] == 1


def test_a_forged_leave_does_not_remove_a_member(sim: MakeCluster) -> None:
    """Red-team finding 7: a forged Leave(n1) was believed, and refuted only 0.2 to 27.6 s later."""
    cluster = started(sim, 3, seed=22)
    mallory = Forger(cluster.clock.now)
    inc = cluster.nodes["node-1"].swim.incarnation
    for target in ("node-0", "node-2"):
        cluster.net.inject(MALLORY, cluster.nodes[target].addr,
                           mallory.codec.pack(Leave("node-1", inc), LAN.udp_frame_bytes))
    cluster.run(0.5)
    assert cluster.all_see("node-1", Status.ALIVE)
    assert not any(e.node == "node-1" and e.new == Status.LEFT for e in cluster.events)


def test_replayed_dead_suspect_and_leave_frames_change_nothing(sim: MakeCluster) -> None:
    """Frames captured while node-3 was declared dead and node-2 left, replayed 1 s and 60 s later
    (as they are, and re-wrapped in Mallory's own frames) after both came back."""
    cluster = started(sim, 4, seed=23)
    observers = {cluster.nodes["node-0"].addr, cluster.nodes["node-1"].addr}
    captured: list[tuple[float, Addr, Addr, bytes]] = []

    def capture(src: Addr, dst: Addr, data: bytes) -> None:
        parts = unbundle(peek([DEFAULT_KEY], data))
        if dst in observers and any(isinstance(m, Suspect | Dead | Leave) for m in parts):
            captured.append((cluster.clock.now(), src, dst, data))

    cluster.net.taps.append(capture)
    cluster.crash("node-3")
    cluster.nodes["node-2"].leave()
    watchers = [cluster.nodes["node-0"], cluster.nodes["node-1"]]
    assert cluster.run_until(lambda: cluster.all_see("node-3", Status.DEAD, watchers)
                             and cluster.all_see("node-2", Status.LEFT, watchers), timeout=60.0)
    cluster.net.taps.remove(capture)
    assert captured
    cluster.crash("node-2")
    cluster.restart("node-2")
    cluster.restart("node-3")
    assert cluster.run_until(cluster.converged, timeout=60.0) is not None
    back = cluster.clock.now()

    mallory = Forger(cluster.clock.now)
    drops_before = dict(cluster.net.stats.dropped)
    for at, src, dst, data in captured:
        for later in (1.0, 60.0):
            when = max(at + later, back) - cluster.clock.now()

            def replay(src: Addr = src, dst: Addr = dst, data: bytes = data) -> None:
                cluster.net.inject(src, dst, data)
                # The same statements (validly signed by their nodes) in a fresh frame of hers.
                statements = [m for m in unbundle(peek([DEFAULT_KEY], data))
                              if isinstance(m, Suspect | Dead | Leave)]
                cluster.net.inject(MALLORY, dst, mallory.frame(Compound(tuple(statements))
                                                               if len(statements) > 1
                                                               else statements[0]))

            cluster.clock.call_later(max(0.0, when), replay)
    cluster.run(90.0)
    for node in ("node-2", "node-3"):
        assert cluster.all_see(node, Status.ALIVE)
        assert not any(e.node == node and e.at > back and e.new != Status.ALIVE
                       for e in cluster.events), f"a replay changed {node}"
    dropped = cluster.net.stats.dropped
    replayed = (dropped["replay"] - drops_before.get("replay", 0)
                + dropped["clock"] - drops_before.get("clock", 0))
    assert replayed == 2 * len(captured)  # every captured frame, both times
