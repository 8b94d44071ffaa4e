"""Random nemesis schedules from a seed, so a failing long run can be replayed exactly.

`schedule(seed, n, count)` picks `count` faults from every kind the netns tier has, each with
its own random parameters (sides, victims, loss), drawn from `random.Random(seed)` only. The
same seed and node count give the same schedule.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from chaos import control_nemesis as cn
from chaos import nemesis as nem

Maker = Callable[[random.Random, int], nem.Nemesis]


def _split(rng: random.Random, n: int) -> tuple[list[int], list[int]]:
    nodes = list(range(n))
    rng.shuffle(nodes)
    cut = rng.randint(1, n // 2)
    return sorted(nodes[:cut]), sorted(nodes[cut:])


def _partition(rng: random.Random, n: int) -> nem.Nemesis:
    small, big = _split(rng, n)
    return nem.Partition(sides=[big, small])


def _one_way(rng: random.Random, n: int) -> nem.Nemesis:
    small, big = _split(rng, n)
    return nem.one_way(small, big)


def _bridge(rng: random.Random, n: int) -> nem.Nemesis:
    nodes = list(range(n))
    rng.shuffle(nodes)
    middle, rest = nodes[0], nodes[1:]
    half = len(rest) // 2
    return nem.bridge(sorted(rest[:half]), middle, sorted(rest[half:]))


def _kill(rng: random.Random, n: int) -> nem.Nemesis:
    return nem.Kill(victims=rng.sample(range(n), rng.randint(1, max(1, (n - 1) // 2))))


MAKERS: dict[str, Maker] = {
    "partition": _partition,
    "one-way": _one_way,
    "bridge": _bridge,
    "ring": lambda rng, n: nem.majorities_ring(n),
    "loss": lambda rng, n: nem.Loss(probability=rng.choice([0.1, 0.2, 0.3])),
    "kill9": _kill,
    "pause": lambda rng, n: nem.Pause(victim=rng.randrange(n)),
    "kill-leader": lambda rng, n: cn.KillLeader(),
    "isolate-leader": lambda rng, n: cn.IsolateLeader(),
    "pause-leader": lambda rng, n: cn.PauseLeader(),
}


def schedule(seed: int, n: int, count: int) -> list[nem.Nemesis]:
    """`count` faults drawn from MAKERS with `random.Random(seed)`."""
    rng = random.Random(seed)
    names = sorted(MAKERS)
    return [MAKERS[rng.choice(names)](rng, n) for _ in range(count)]
