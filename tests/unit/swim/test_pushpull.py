"""Push-pull state is bounded by the TCP frame: cut (counted, logged), never unsendable."""

from __future__ import annotations

import random

from meshkp.net.crypto import SEAL_OVERHEAD
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import NullDelegate
from meshkp.swim.fields import MAX_PUSH_PULL_MEMBERS
from meshkp.swim.messages import Alive, Leave, MemberRecord, PushPull, decode_message
from meshkp.swim.protocol import Swim
from meshkp.swim.pushpull import bounded_push_pull
from meshkp.swim.types import Status

from .helpers import addr


class BigState(NullDelegate):
    """A delegate whose state (the replication summary) is larger than a TCP frame."""

    def local_state(self, join: bool) -> bytes:
        return b"s" * (TCP_FRAME_BYTES + 1)


def over_the_wire(message: PushPull) -> PushPull:
    """Encode as the TCP transport does (raises if it would not send) and decode as a peer."""
    data = encode_frame(Frame(message.TYPE, message.to_map()), TCP_FRAME_BYTES - SEAL_OVERHEAD)
    frame = decode_frame(data, TCP_FRAME_BYTES - SEAL_OVERHEAD)
    decoded = decode_message(frame.type, frame.body)
    assert isinstance(decoded, PushPull)
    return decoded


def test_a_state_larger_than_a_frame_is_dropped_and_counted() -> None:
    s = Swim(SwimConfig.lan(), "a", addr("a"), 0.0, delegate=BigState(), rng=random.Random(1))
    s.handle(0.0, addr("b"), Alive("b", addr("b"), 1, {}))
    sent = over_the_wire(s.local_push_pull(join=False, reply=False))
    assert sent.user_state == b"" and {r.node for r in sent.members} == {"a", "b"}
    assert s.stats.push_pulls_truncated == 1


def test_a_table_over_the_member_bound_is_cut_keeping_ourselves_and_the_living() -> None:
    # A member table is bounded by swim.max_members (at most MAX_PUSH_PULL_MEMBERS), so only
    # bounded_push_pull itself can be handed more rows than a push-pull carries.
    n = MAX_PUSH_PULL_MEMBERS + 50
    rows = [MemberRecord(f"m{i}", (f"10.{i // 250 % 250}.{i % 250}.1", 7946), 1,
                         Status.LEFT if i < 40 else Status.ALIVE, {}) for i in range(n)]
    rows.append(MemberRecord("a", addr("a"), 1, Status.ALIVE, {}))
    message, trim = bounded_push_pull("a", True, True, rows, b"")
    sent = over_the_wire(message)  # left members are the first to go (51 are cut)
    assert len(sent.members) == MAX_PUSH_PULL_MEMBERS
    assert sent.members[0].node == "a"
    assert all(r.status == Status.ALIVE for r in sent.members)
    assert trim.members_cut == 51


def test_a_flood_of_new_members_stops_at_the_member_bound() -> None:
    """Red-team finding 6: 10,050 alives for fake ids made 10,053 members and stopped joins."""
    config = SwimConfig.lan()
    s = Swim(config, "a", addr("a"), 0.0, rng=random.Random(1))
    for i in range(MAX_PUSH_PULL_MEMBERS + 50):
        s.handle(0.0, addr("x"), Alive(f"m{i}", (f"10.{i // 250 % 250}.{i % 250}.1", 7946), 1, {}))
    assert len(s.members()) == config.max_members
    assert s.stats.members_refused == MAX_PUSH_PULL_MEMBERS + 50 - (config.max_members - 1)
    sent = over_the_wire(s.local_push_pull(join=True, reply=True))
    assert len(sent.members) == config.max_members and s.stats.push_pulls_truncated == 0
    # Known members still change state: the bound refuses only newcomers.
    s.handle(1.0, addr("x"), Leave("m0", 1))
    assert s.member("m0").status == Status.LEFT  # type: ignore[union-attr]
