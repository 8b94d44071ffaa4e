"""Small helpers to drive one Swim core by hand in unit tests."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any, TypeVar

from meshkp.net.addr import Addr
from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import Effect, MemberChanged, ReplyTcp, SendTcp, SendUdp
from meshkp.swim.messages import Ack, Alive, Message, Nack, Ping, PingReq, unbundle
from meshkp.swim.protocol import Swim
from meshkp.swim.types import Status

M = TypeVar("M", bound=Message)


def addr(name: str) -> Addr:
    return (f"{name}.test", 7946)


def make(name: str = "a", now: float = 0.0, seed: int = 1, **config: Any) -> Swim:
    cfg = dataclasses.replace(SwimConfig.lan(), **config)
    return Swim(cfg, name, addr(name), now, rng=random.Random(seed))


def know(s: Swim, *names: str, now: float = 0.0, inc: int = 1) -> None:
    for n in names:
        s.handle(now, addr(n), Alive(n, addr(n), inc, {}))


def udp(effects: list[Effect]) -> list[tuple[Addr, list[Message]]]:
    return [(e.addr, list(unbundle(e.message))) for e in effects if isinstance(e, SendUdp)]


def sent(effects: list[Effect], cls: type[M]) -> list[tuple[Addr, M]]:
    """Every message of type cls in the UDP effects, with its destination."""
    return [(a, m) for a, msgs in udp(effects) for m in msgs if isinstance(m, cls)]


def changes(effects: list[Effect]) -> list[tuple[str, Status | None, Status]]:
    return [(e.member.node_id, e.old, e.new) for e in effects if isinstance(e, MemberChanged)]


def tcp(effects: list[Effect]) -> list[SendTcp]:
    return [e for e in effects if isinstance(e, SendTcp)]


def replies(effects: list[Effect]) -> list[ReplyTcp]:
    return [e for e in effects if isinstance(e, ReplyTcp)]


def run(s: Swim, until: float, alive: Iterable[str] = ()) -> list[Effect]:
    """Tick s at each of its deadlines up to `until`; the members in `alive` answer its probes.

    A ping to a live member is acked at once; a ping-req to a live member is acked when its
    target is live too, and nacked otherwise. Returns every effect, in order.
    """
    live = {addr(n): n for n in alive}
    out: list[Effect] = []
    for _ in range(100_000):
        due = s.next_deadline()
        if due > until:
            break
        effects = s.tick(due)
        out.extend(effects)
        for dest, msgs in udp(effects):
            if dest not in live:
                continue
            for m in msgs:
                if isinstance(m, Ping):
                    out.extend(s.handle(due, dest, Ack(m.seq)))
                elif isinstance(m, PingReq):
                    answer = Ack(m.seq) if m.target in live.values() else Nack(m.seq)
                    out.extend(s.handle(due, dest, answer))
    else:  # pragma: no cover - a core that never advances its deadlines
        raise AssertionError("next_deadline() does not advance")
    return out


def drain(s: Swim, now: float) -> None:
    """Empty s's broadcast queue (as if it had gossiped everything)."""
    s.ms.queue.clear()
    del now
