"""What the SWIM core asks its driver to do, and the delegate seam towards the data layer.

The core returns effects instead of doing I/O. Its driver (meshkp/membership/service.py, over
real sockets or a SimNetwork) performs them:

- SendUdp(addr, message): encode `message` (maybe a Compound) as one frame and send it by UDP.
- SendTcp(addr, push_pull): connect, send the push-pull, read one PushPull reply within
  `tcp_timeout` and pass it to `Swim.handle`. A failure is only logged (the core retries later).
- ReplyTcp(push_pull): write this reply on the TCP connection whose request was just handled.
- MemberChanged(member, old, new): a member's status changed (old is None for a new member).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from meshkp.net.addr import Addr
from meshkp.swim.messages import Message, PushPull
from meshkp.swim.types import MemberInfo, Status


@dataclass(frozen=True, slots=True)
class SendUdp:
    addr: Addr
    message: Message


@dataclass(frozen=True, slots=True)
class SendTcp:
    addr: Addr
    message: PushPull


@dataclass(frozen=True, slots=True)
class ReplyTcp:
    message: PushPull


@dataclass(frozen=True, slots=True)
class MemberChanged:
    member: MemberInfo
    old: Status | None
    new: Status


Effect = SendUdp | SendTcp | ReplyTcp | MemberChanged


class Delegate(Protocol):
    """memberlist's Delegate + EventDelegate: how replication hooks into membership.

    Called synchronously from inside the core, so implementations must be quick and must not
    do I/O (queue work for an asyncio task instead).
    """

    def node_meta(self) -> Mapping[str, str]:
        """This node's meta, gossiped in alive messages (e.g. {"http": "10.0.0.1:11371"})."""
        ...

    def local_state(self, join: bool) -> bytes:
        """Opaque state sent with every push-pull (e.g. a Merkle root)."""
        ...

    def merge_remote_state(self, state: bytes, join: bool) -> None:
        """A peer's `local_state` received through push-pull."""
        ...

    def notify_join(self, member: MemberInfo) -> None: ...

    def notify_leave(self, member: MemberInfo) -> None:
        """The member became dead or left (see member.status)."""
        ...

    def notify_update(self, member: MemberInfo) -> None:
        """The member's meta or address changed."""
        ...


class NullDelegate:
    """A Delegate that carries no state and ignores events; subclass and override what you need."""

    def __init__(self, meta: Mapping[str, str] | None = None) -> None:
        self._meta = dict(meta or {})

    def node_meta(self) -> Mapping[str, str]:
        return self._meta

    def local_state(self, join: bool) -> bytes:
        return b""

    def merge_remote_state(self, state: bytes, join: bool) -> None:
        return None

    def notify_join(self, member: MemberInfo) -> None:
        return None

    def notify_leave(self, member: MemberInfo) -> None:
        return None

    def notify_update(self, member: MemberInfo) -> None:
        return None
