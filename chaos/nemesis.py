"""Faults a chaos run injects and heals, each recorded as start/stop events in the History.

Network faults are iptables DROP rules on INPUT inside the node namespaces (chaos/netns.py):
a partition drops on both sides, a one-way partition on one side only. Process faults are
signals (kill -9, SIGSTOP). Disk faults act on a node's data dir: a ballast file that fills its
small tmpfs, or flipped bytes in its largest LevelDB table while it is stopped.

`targets(w)` says which nodes writer w may send to while the fault lasts (each writer keeps to
one side of a partition, so both sides take writes); `heal` returns every node to service.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.cluster import ChaosCluster
from chaos.history import History

BALLAST = "chaos-ballast"
BALLAST_CHUNK = 1 << 20


@dataclass
class Nemesis:
    """Base: no fault. Subclasses set `name` and override start/stop (and sides/targets)."""

    name: str = "none"
    sides: list[list[int]] = field(default_factory=list)

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        history.event(self.name, "start", self.sides)

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        history.event(self.name, "stop")

    def targets(self, cluster: ChaosCluster, w: int) -> list[int]:
        if self.sides:
            return list(self.sides[w % len(self.sides)])
        return list(range(cluster.n))

    def problems(self) -> list[str]:
        """What this fault itself saw go wrong (the run fails with each); none by default."""
        return []

    def note(self) -> str:
        """What this fault measured, for the run's report ("" when nothing)."""
        return ""


def _topology(cluster: ChaosCluster):  # type: ignore[no-untyped-def]
    if cluster.topology is None:
        raise RuntimeError("network faults need the netns topology (launch(n, netns=True))")
    return cluster.topology


@dataclass
class Partition(Nemesis):
    """Groups that cannot reach each other (both directions)."""

    name: str = "partition"

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        _topology(cluster).partition(self.sides)
        super().start(cluster, history, rng)

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        _topology(cluster).heal()
        super().stop(cluster, history)


@dataclass
class Drops(Nemesis):
    """Explicit INPUT drop rules: node -> nodes it receives nothing from."""

    rules: dict[int, list[int]] = field(default_factory=dict)

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        _topology(cluster).drops(self.rules)
        history.event(self.name, "start", self.sides, detail=str(self.rules))

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        _topology(cluster).heal()
        super().stop(cluster, history)


def one_way(deaf: list[int], others: list[int]) -> Drops:
    """`deaf` receive nothing from `others`; `others` still receive from `deaf`."""
    return Drops(name="one-way", sides=[deaf, others], rules={i: list(others) for i in deaf})


def majorities_ring(n: int) -> Drops:
    """Each node hears only itself and its two ring neighbours (Jepsen's majorities-ring): with
    5 nodes that is a majority for each, and no two nodes hear the same majority."""
    rules = {i: [j for j in range(n) if j not in {(i - 1) % n, i, (i + 1) % n}] for i in range(n)}
    return Drops(name="ring", rules=rules)


def bridge(left: list[int], middle: int, right: list[int]) -> Drops:
    """Two halves that cannot reach each other, and one node that reaches both."""
    rules = {i: list(right) for i in left} | {j: list(left) for j in right}
    return Drops(name="bridge", sides=[left + [middle], right + [middle]], rules=rules)


@dataclass
class Loss(Nemesis):
    name: str = "loss"
    probability: float = 0.3

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        _topology(cluster).loss(self.probability)
        history.event(self.name, "start", detail=f"p={self.probability}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        _topology(cluster).heal()
        super().stop(cluster, history)


@dataclass
class Kill(Nemesis):
    """kill -9 of `victims` (or of one random node); restarted at stop."""

    name: str = "kill9"
    victims: list[int] = field(default_factory=list)

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        if not self.victims:
            self.victims = [rng.randrange(cluster.n)]
        for i in self.victims:
            cluster.kill(i)
        history.event(self.name, "start", detail=f"nodes={self.victims}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        cluster.restart_all()
        super().stop(cluster, history)


@dataclass
class Pause(Nemesis):
    """SIGSTOP of one node (longer than the suspicion timeout when held long enough)."""

    name: str = "pause"
    victim: int | None = None

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        if self.victim is None:
            self.victim = rng.randrange(cluster.n)
        cluster.pause(self.victim)
        history.event(self.name, "start", detail=f"node={self.victim}")

    def targets(self, cluster: ChaosCluster, w: int) -> list[int]:
        return [i for i in range(cluster.n) if i != self.victim]

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        if self.victim is not None:
            cluster.resume(self.victim)
        super().stop(cluster, history)


def fill_disk(where: Path) -> int:
    """Write a ballast file in `where` until its filesystem is full; the bytes written."""
    written = 0
    with open(where / BALLAST, "ab") as ballast:
        try:
            while written < 1 << 34:  # bounded: 16 GiB, never reached on the small tmpfs
                ballast.write(b"\0" * BALLAST_CHUNK)
                ballast.flush()
                written += BALLAST_CHUNK
        except OSError:
            pass
    return written


@dataclass
class DiskFull(Nemesis):
    """Fill `victim`'s data dir (its own small tmpfs: launch(mounts=...)); free it at stop."""

    name: str = "disk-full"
    victim: int = 0
    expected_error: str = "event=store_full"  # logged once when the disk fills, at ERROR

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        written = fill_disk(cluster.root / f"n{self.victim}")
        history.event(self.name, "start", detail=f"node={self.victim} ballast={written}")

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        (cluster.root / f"n{self.victim}" / BALLAST).unlink(missing_ok=True)
        super().stop(cluster, history)


def flip_largest_table(keys_dir: Path) -> Path | None:
    """Flip 64 bytes in the middle of the largest LevelDB table; the file, or None if none."""
    tables = sorted(keys_dir.glob("*.ldb"), key=lambda p: p.stat().st_size)
    if not tables:
        return None
    data = bytearray(tables[-1].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    tables[-1].write_bytes(bytes(data))
    return tables[-1]


@dataclass
class Corrupt(Nemesis):
    """Stop `victim`, restart it once (its log becomes a table), stop it, damage the table.

    At start the node must refuse to open with the remedy (`refusal` keeps what it said); at
    stop the operator's remedy is applied: keys/ moved away, the node started empty, and it
    bootstraps from its peers.
    """

    name: str = "corrupt"
    victim: int = 0
    refusal: str = ""

    def start(self, cluster: ChaosCluster, history: History, rng: random.Random) -> None:
        cluster.stop_node(self.victim)
        cluster.start_node(self.victim)
        cluster.stop_node(self.victim)
        keys = cluster.root / f"n{self.victim}" / "keys"
        damaged = flip_largest_table(keys)
        history.event(self.name, "start", detail=f"node={self.victim} table={damaged}")
        try:
            cluster.start_node(self.victim)
        except RuntimeError as exc:
            self.refusal = str(exc)[-800:]
            cluster.nodes[self.victim] = None
        else:
            self.refusal = ""  # it started on a damaged store: the run reports it

    def targets(self, cluster: ChaosCluster, w: int) -> list[int]:
        return [i for i in range(cluster.n) if i != self.victim]

    def stop(self, cluster: ChaosCluster, history: History) -> None:
        data = cluster.root / f"n{self.victim}"
        if cluster.nodes[self.victim] is not None:
            cluster.stop_node(self.victim)
        (data / "keys").rename(data / f"keys.damaged.{int(time.time())}")
        cluster.start_node(self.victim)
        super().stop(cluster, history)


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs at {where}: {done.stderr.strip()}")


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def kill_during_bootstrap(cluster: ChaosCluster, victim: int, history: History, kills: int = 2,
                          timeout: float = 60.0) -> list[int]:
    """Wipe `victim`, restart it empty, and kill -9 it while it copies, `kills` times; the key
    counts it had at each kill. Then it is started for good."""
    cluster.stop_node(victim)
    data = cluster.root / f"n{victim}" / "keys"
    subprocess.run(["rm", "-rf", str(data)], check=True, timeout=60)
    history.event("bootstrap-kill", "start", detail=f"node={victim}")
    counts = []
    for _ in range(kills):
        cluster.start_node(victim)
        deadline = time.monotonic() + timeout
        keys = 0
        while time.monotonic() < deadline:
            body = cluster.get_json(victim, "/pks/health") or {}
            keys = int(body.get("keys", 0) or 0)
            if keys > 0:
                break
            time.sleep(0.02)
        node = cluster.nodes[victim]
        if node is not None:
            node.stop(signal.SIGKILL)
            cluster.nodes[victim] = None
        counts.append(keys)
    cluster.start_node(victim)
    history.event("bootstrap-kill", "stop")
    return counts
