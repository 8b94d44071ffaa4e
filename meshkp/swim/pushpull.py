"""A push-pull that always fits one TCP frame and always decodes at the peer.

The whole member table and the delegate's state (the replication summary) travel in one sealed
TCP frame. Unbounded, a large table or state made a frame the transport refused to send, or a
member list over MAX_PUSH_PULL_MEMBERS that every peer refused to decode: the push-pull failed
silently on every round, and new nodes could not join (red-team finding 6). So the delegate
state is dropped first when it does not fit (it is an optimisation; anti-entropy still runs),
then members are cut, ourselves first to keep and left members first to go. Each cut is
reported, and Swim counts and logs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshkp.net.wire import TCP_FRAME_BYTES
from meshkp.swim.fields import MAX_PUSH_PULL_MEMBERS, MAX_USER_STATE_BYTES, packb
from meshkp.swim.messages import MemberRecord, PushPull

# Room for the frame header, the seal (44 bytes) and the push-pull's own fields, with slack.
PUSH_PULL_OVERHEAD = 4096
PUSH_PULL_BYTES = TCP_FRAME_BYTES - PUSH_PULL_OVERHEAD


@dataclass(frozen=True, slots=True)
class Trim:
    """What bounded_push_pull left out: members cut, and whether the delegate state was."""

    members_cut: int = 0
    state_dropped: bool = False

    def __bool__(self) -> bool:
        return self.members_cut > 0 or self.state_dropped


def bounded_push_pull(
    source: str, join: bool, reply: bool, records: Sequence[MemberRecord], user_state: bytes,
    budget: int = PUSH_PULL_BYTES,
) -> tuple[PushPull, Trim]:
    """The PushPull of `records` and `user_state`, cut to `budget` bytes and the member bound."""
    # Ourselves first, then by status: alive and suspect matter most, left members least.
    ranked = sorted(records, key=lambda r: (r.node != source, int(r.status)))
    sizes = [len(packb(r.to_list())) for r in ranked]
    table = sum(sizes)
    state_dropped = bool(user_state) and (
        len(user_state) > MAX_USER_STATE_BYTES or table + len(user_state) > budget)
    if state_dropped:
        user_state = b""
    room = budget - len(user_state)
    kept, used = 0, 0
    for size in sizes[:MAX_PUSH_PULL_MEMBERS]:
        if used + size > room:
            break
        kept, used = kept + 1, used + size
    members = tuple(ranked[:kept]) if kept < len(ranked) else tuple(records)
    message = PushPull(source, join, reply, members, user_state)
    return message, Trim(len(records) - kept, state_dropped)
