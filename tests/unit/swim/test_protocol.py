"""The Swim facade: join, push-pull, restart, delegate seam, frame budget, deadlines."""

from collections.abc import Mapping

import pytest

from meshkp.membership.proofs import Proofs
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.sim.codec import DEFAULT_KEY, make_codec
from meshkp.swim.effects import NullDelegate, SendUdp
from meshkp.swim.messages import Alive, Dead, Leave, MemberRecord, Ping, PushPull
from meshkp.swim.protocol import Swim
from meshkp.swim.types import MemberInfo, Status

from .helpers import addr, changes, know, make, replies, run, tcp, udp


def test_join_push_pulls_with_every_seed_but_itself() -> None:
    s = make("a")
    effects = s.join(0.0, [addr("b"), addr("a"), addr("c"), addr("b")])
    assert [e.addr for e in tcp(effects)] == [addr("b"), addr("c")]
    pp = tcp(effects)[0].message
    assert pp.join and not pp.reply and pp.source == "a"
    assert [r.node for r in pp.members] == ["a"]


def test_push_pull_request_is_merged_then_answered() -> None:
    s = make("a")
    know(s, "b")
    request = PushPull("c", join=True, reply=False, members=(
        MemberRecord("c", addr("c"), 1, Status.ALIVE, {}),
        MemberRecord("d", addr("d"), 4, Status.ALIVE, {"http": "d:1"}),
        MemberRecord("b", addr("b"), 1, Status.DEAD, {}),   # remote dead counts only as suspect
        MemberRecord("x", addr("x"), 1, Status.DEAD, {}),   # unknown and dead: ignored
    ), user_state=b"state")
    effects = s.handle(1.0, addr("c"), request)
    assert ("c", None, Status.ALIVE) in changes(effects)
    assert ("d", None, Status.ALIVE) in changes(effects)
    assert ("b", Status.ALIVE, Status.SUSPECT) in changes(effects)
    assert s.member("x") is None
    (reply,) = replies(effects)
    assert reply.message.reply and reply.message.join
    assert {r.node for r in reply.message.members} == {"a", "b", "c", "d"}
    # A reply is merged but never answered.
    assert replies(s.handle(2.0, addr("c"), reply.message)) == []


def test_restarted_node_rejoins_with_a_higher_incarnation() -> None:
    b = make("b")
    know(b, "a", inc=5)
    b.handle(1.0, addr("c"), Alive("c", addr("c"), 1, {}))
    b.handle(2.0, addr("c"), Dead("a", 5, "c"))
    assert b.member("a").status == Status.DEAD  # type: ignore[union-attr]

    a = make("a", now=100.0)  # fresh process, incarnation 1
    (join,) = tcp(a.join(100.0, [addr("b")]))
    answer = b.handle(100.1, addr("a"), join.message)
    assert b.member("a").status == Status.DEAD  # type: ignore[union-attr]  # inc 1 <= 5
    (reply,) = replies(answer)
    a.handle(100.2, addr("b"), reply.message)
    assert a.incarnation == 6  # refuted its own death
    ack = a.handle(100.3, addr("b"), Ping(1, "a", "b", addr("b")))
    alive = [m for _, msgs in udp(ack) for m in msgs if isinstance(m, Alive) and m.node == "a"]
    assert alive == [Alive("a", addr("a"), 6, {})]
    assert changes(b.handle(100.4, addr("a"), alive[0])) == [("a", Status.DEAD, Status.ALIVE)]


class RecordingDelegate(NullDelegate):
    def __init__(self) -> None:
        super().__init__({"http": "10.0.0.1:11371"})
        self.events: list[tuple[str, str, Status]] = []
        self.merged: list[tuple[bytes, bool]] = []

    def local_state(self, join: bool) -> bytes:
        return b"root:" + (b"join" if join else b"sync")

    def merge_remote_state(self, state: bytes, join: bool) -> None:
        self.merged.append((state, join))

    def notify_join(self, member: MemberInfo) -> None:
        self.events.append(("join", member.node_id, member.status))

    def notify_leave(self, member: MemberInfo) -> None:
        self.events.append(("leave", member.node_id, member.status))

    def notify_update(self, member: MemberInfo) -> None:
        self.events.append(("update", member.node_id, member.status))


def test_delegate_seam() -> None:
    d = RecordingDelegate()
    s = Swim(make("a").config, "a", addr("a"), 0.0, delegate=d)
    assert s.member("a").meta == {"http": "10.0.0.1:11371"}  # type: ignore[union-attr]
    assert tcp(s.join(0.0, [addr("b")]))[0].message.user_state == b"root:join"
    s.handle(1.0, addr("b"), Alive("b", addr("b"), 1, {}))
    s.handle(2.0, addr("b"), Alive("b", addr("b"), 2, {"http": "b:1"}))
    s.handle(3.0, addr("c"), Dead("b", 2, "c"))
    s.handle(4.0, addr("b"), Alive("b", addr("b"), 3, {"http": "b:1"}))
    s.handle(5.0, addr("b"), Leave("b", 4))
    assert d.events == [("join", "b", Status.ALIVE), ("update", "b", Status.ALIVE),
                        ("leave", "b", Status.DEAD), ("join", "b", Status.ALIVE),
                        ("leave", "b", Status.LEFT)]
    s.handle(6.0, addr("b"), PushPull("b", join=False, reply=False, members=(),
                                       user_state=b"theirs"))
    assert d.merged == [(b"theirs", False)]


@pytest.mark.parametrize("meta_bytes", [0, 300])
def test_every_udp_frame_fits_in_1400_bytes(meta_bytes: int) -> None:
    """300 fresh members make a long queue; gossip and piggyback must split it into frames."""
    s = make("a")
    names = [f"member-with-a-long-name-{i:04d}" for i in range(300)]
    meta: Mapping[str, str] = {"pad": "x" * meta_bytes} if meta_bytes else {}
    for n in names:  # as each member signed it: a 32-byte key and a 64-byte signature
        s.handle(0.0, addr(n), Alive(n, addr(n), 1, meta, bytes(32), bytes(64)))
    # The real frame: signed (120 bytes and the sender id) and sealed (44 bytes), with our own
    # statements signed by the driver on the way out.
    identity = NodeIdentity.generate("a")
    auth = FrameAuth(identity)
    codec = make_codec([DEFAULT_KEY], auth=auth)
    proofs = Proofs(identity, auth.peers, NetStats())
    frames = [e for e in run(s, 3.0, alive=names) if isinstance(e, SendUdp)]
    assert len(frames) > 20
    sizes = [len(codec.pack(proofs.sign(e.message), 10_000)) for e in frames]
    assert max(sizes) <= 1400
    assert max(sizes) > 1200  # and they are actually packed, not one message per frame


def test_tick_always_moves_the_next_deadline_forward() -> None:
    s = make("a")
    know(s, "b", "c", "d")
    for _ in range(500):
        t = s.next_deadline()
        s.tick(t)
        assert s.next_deadline() > t


def test_meta_that_peers_would_refuse_is_a_config_error() -> None:
    import random

    from meshkp.errors import ConfigError

    config = make("a").config
    with pytest.raises(ConfigError, match="meta exceeds 512 bytes"):
        Swim(config, "a", addr("a"), 0.0, delegate=NullDelegate({"pad": "x" * 600}))
    s = Swim(config, "a", addr("a"), 0.0, rng=random.Random(1))
    with pytest.raises(ConfigError, match="meta"):
        s.update_meta(1.0, {"port": 11371})  # type: ignore[dict-item]
    assert s.incarnation == 1
