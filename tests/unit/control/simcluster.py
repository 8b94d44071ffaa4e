"""A seeded, deterministic multi-node harness for the Raft core, on simulated time.

Every node runs the real RaftCore behind the Ready contract: its "disk" keeps exactly what the
Ready said to persist, and a crash throws away everything else (the core, its outbox, its
volatile state); a restart rebuilds the core from the disk. Messages go through the real wire
encoding (encode_frame/decode_frame), a seeded network loses, duplicates, delays and
reorders them, and partitions drop them at delivery. Each node's clock runs at its own rate
within the configured drift bound. Checkers record every safety property as it happens.

The default state machine is a hash chain over applied entries: equal digests at an index mean
equal histories, and a snapshot carries its digest so an installed snapshot is checked too.
Tests may run the real policy state machine instead (`machine=`), with real proposals.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import msgpack

from meshkp.control.config import ControlConfig
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, MembershipChange
from meshkp.control.raft.messages import RaftMessage, decode_message
from meshkp.control.raft.ready import Ready
from meshkp.control.raft.types import Compaction, Entry, EntryKind, HardState, Restored, Role, Snapshot
from meshkp.errors import ControlError
from meshkp.net.wire import TCP_FRAME_BYTES, Frame, decode_frame, encode_frame

# _disk_term of an entry below a disk's compaction point: only committed entries are compacted.
COMPACTED = -1


class SafetyViolation(AssertionError):
    """A Raft safety property failed; the message carries the seed's schedule."""


@dataclass
class Disk:
    """What one node has durably persisted (the Ready contract, applied literally)."""

    hard_state: HardState = HardState()
    snapshot: Snapshot | None = None
    base_index: int = 0
    base_term: int = 0
    entries: list[Entry] = field(default_factory=list)

    def save(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            snap = ready.snapshot
            self.snapshot, self.entries = snap, []
            self.base_index, self.base_term = snap.index, snap.term
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state
        if ready.entries:
            first = ready.entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(ready.entries)

    def compact(self, compaction: Compaction) -> None:
        self.snapshot = compaction.snapshot
        self.entries = [e for e in self.entries if e.index > compaction.base_index]
        self.base_index, self.base_term = compaction.base_index, compaction.base_term

    def restored(self) -> Restored:
        return Restored(self.hard_state, self.snapshot, self.base_index, self.base_term,
                        tuple(self.entries))

    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.base_index

    def term_at(self, index: int) -> int | None:
        """The term of the stored entry at `index`; COMPACTED below the base, None beyond."""
        if index <= self.base_index:
            return self.base_term if index == self.base_index else COMPACTED
        position = index - self.base_index - 1
        return self.entries[position].term if position < len(self.entries) else None

    @classmethod
    def founded(cls, restored: Restored) -> Disk:
        return cls(restored.hard_state, restored.snapshot, restored.base_index, restored.base_term,
                   list(restored.entries))


class DiskLike(Protocol):
    """What a node persists: the in-memory Disk above, or RaftStorage on a real Store."""

    def save(self, ready: Ready) -> None: ...

    def compact(self, compaction: Compaction) -> None: ...

    def restored(self) -> Restored: ...

    def last_index(self) -> int: ...

    def term_at(self, index: int) -> int | None: ...


def digest_after(previous: bytes, entry: Entry) -> bytes:
    return hashlib.sha256(previous + msgpack.packb([entry.term, int(entry.kind), entry.data])).digest()


class Machine(Protocol):
    """A node's applied state: equal digests at an index mean equal states."""

    @property
    def index(self) -> int: ...

    def apply(self, entry: Entry) -> None: ...

    def digest(self) -> bytes: ...

    def encode(self) -> bytes: ...


@dataclass
class HashChain:
    """The default machine: a hash chain over every applied entry."""

    index: int = 0
    chain: bytes = b""

    def apply(self, entry: Entry) -> None:
        self.index, self.chain = entry.index, digest_after(self.chain, entry)

    def digest(self) -> bytes:
        return self.chain

    def encode(self) -> bytes:
        return msgpack.packb([self.index, self.chain])

    @classmethod
    def load(cls, data: bytes | None) -> HashChain:
        """From a snapshot's data, or empty."""
        if data is None:
            return cls()
        index, chain = msgpack.unpackb(data)
        return cls(index, chain)


@dataclass
class SimNode:
    id: str
    disk: DiskLike
    rate: float
    offset: float
    core: RaftCore | None = None
    machine: Machine = field(default_factory=HashChain)
    paused: bool = False
    inbox: list[tuple[str, bytes]] = field(default_factory=list)

    def local(self, t: float) -> float:
        return self.offset + self.rate * t

    def sim_time(self, local: float) -> float:
        return (local - self.offset) / self.rate

    @property
    def up(self) -> bool:
        return self.core is not None


@dataclass
class NetConfig:
    loss: float = 0.0
    duplicate: float = 0.0
    delay_min: float = 0.0005
    delay_max: float = 0.005


class Cluster:
    """n nodes on simulated time; `run_until(t)` advances everything deterministically."""

    def __init__(
        self,
        seed: int,
        ids: list[str],
        *,
        config: ControlConfig | None = None,
        net: NetConfig | None = None,
        drift: bool = True,
        voters: list[str] | None = None,
        check_minority: bool = True,
        disk: Callable[[Restored], DiskLike] = Disk.founded,
        machine: Callable[[bytes | None], Machine] = HashChain.load,
        payload: Callable[[int], bytes] = lambda n: f"cmd-{n}".encode(),
        torn_writes: float = 0.0,
    ) -> None:
        self.seed = seed
        # Chance that a leader crashes after sending its early appends and before writing the
        # entries they carry
        # (Ready.early); the nodes it happened to are in `torn`, down until restarted.
        self.torn_writes = torn_writes
        self.torn: set[str] = set()
        self.config = config or replace(ControlConfig(), snapshot_threshold=40, snapshot_trailing_entries=8)
        self.net = net or NetConfig()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.schedule: list[str] = []
        self._queue: list[tuple[float, int, str, str, bytes]] = []
        self._seq = itertools.count()
        self.cuts: set[frozenset[str]] = set()
        self.check_minority = check_minority
        self._new_disk = disk
        self._new_machine = machine
        self._payload = payload
        # Clock rates within the bound: over one election_timeout_min of a follower, the
        # leader's clock counts at least election_timeout_min - max_clock_drift.
        ratio = self.config.max_clock_drift / self.config.election_timeout_min
        rho = ratio / (2 - ratio) if drift else 0.0
        self.nodes: dict[str, SimNode] = {}
        for node_id in ids:
            rate = self.rng.uniform(1 - rho, 1 + rho)
            if drift and self.rng.random() < 0.5:
                rate = self.rng.choice((1 - rho, 1 + rho))  # often right at the bound
            self.nodes[node_id] = SimNode(node_id, Disk(), rate, self.rng.uniform(0, 1000))
        self._seed_disks(voters or ids, ids)
        # -- what the checkers saw --
        self.leaders: dict[int, str] = {}
        self.applied: dict[int, tuple[int, bytes]] = {}  # index -> (term, digest after it)
        self.commit_watch: dict[str, int] = {}  # minority node -> last index its side held at the cut
        self._commits: dict[str, int] = {}
        self.committed_in: dict[int, int] = {}  # index -> term of the leader that committed it
        self.proposed: list[tuple[str, int, int, bytes]] = []
        self.proposals_committed = 0
        self.on_apply: Callable[[str, Entry], None] | None = None
        for node in self.nodes.values():
            self._start(node)

    # -- setup ----------------------------------------------------------------------------

    def _seed_disks(self, voters: list[str], ids: list[str]) -> None:
        """All nodes start from the same founding configuration (as if bootstrapped and joined)."""
        change = ConfigChange(MembershipChange(ChangeOp.BOOTSTRAP, voters[0]),
                              Configuration(frozenset(voters), frozenset(set(ids) - set(voters))))
        founding = Restored(HardState(1, "", 0), entries=(Entry(1, 1, EntryKind.CONFIG, change.encode()),))
        for node in self.nodes.values():
            node.disk = self._new_disk(founding)

    def _start(self, node: SimNode) -> None:
        node.core = RaftCore(self.config, node.id, node.local(self.now),
                             rng=random.Random(self.rng.getrandbits(64)), restored=node.disk.restored())
        snap = node.core.snapshot
        node.machine = self._new_machine(snap.data if snap is not None else None)
        self._drain(node)

    # -- faults -----------------------------------------------------------------------------

    def crash(self, node_id: str) -> None:
        self.schedule.append(f"{self.now:.3f} crash {node_id}")
        node = self.nodes[node_id]
        node.core, node.inbox, node.paused = None, [], False

    def restart(self, node_id: str) -> None:
        self.schedule.append(f"{self.now:.3f} restart {node_id}")
        self._start(self.nodes[node_id])

    def wipe(self, node_id: str) -> None:
        """Crash the node and restart it on an empty disk under the same id (its store moved
        away: docs/operations.md "A damaged store"), term, vote and log gone."""
        self.crash(node_id)
        self.schedule.append(f"{self.now:.3f} wipe {node_id}")
        self.nodes[node_id].disk = Disk()
        self.restart(node_id)

    def pause(self, node_id: str) -> None:
        self.schedule.append(f"{self.now:.3f} pause {node_id}")
        self.nodes[node_id].paused = True

    def resume(self, node_id: str) -> None:
        self.schedule.append(f"{self.now:.3f} resume {node_id}")
        node = self.nodes[node_id]
        node.paused = False
        inbox, node.inbox = node.inbox, []
        for sender, data in inbox:
            self._deliver(node, sender, data)

    def partition(self, *groups: set[str]) -> None:
        """Cut every link between different groups (nodes not listed form one more group)."""
        listed = set().union(*groups)
        rest = set(self.nodes) - listed
        all_groups = [set(g) for g in groups] + ([rest] if rest else [])
        self.schedule.append(f"{self.now:.3f} partition {[sorted(g) for g in all_groups]}")
        self.cuts = set()
        for a, b in itertools.combinations(all_groups, 2):
            for x in a:
                for y in b:
                    self.cuts.add(frozenset((x, y)))
        # Entries a minority appends after the cut (above every index its disks held) must
        # never commit while the cut lasts; older ones may, with acks from before the cut.
        self.commit_watch = {}
        if self.check_minority:
            for group in all_groups:
                held = max(self._disk_last(self.nodes[node_id]) for node_id in group)
                for node_id in group:
                    node = self.nodes[node_id]
                    if node.core is not None and not self._has_majority(group, node.core.configuration):
                        self.commit_watch[node_id] = held

    def heal(self) -> None:
        self.schedule.append(f"{self.now:.3f} heal")
        self.cuts = set()
        self.commit_watch = {}

    @staticmethod
    def _disk_last(node: SimNode) -> int:
        return node.disk.last_index()

    def _voters(self) -> frozenset[str]:
        for node in self.nodes.values():
            if node.core is not None:
                return node.core.configuration.voters
        return frozenset()

    @staticmethod
    def _has_majority(group: set[str], configuration: Configuration) -> bool:
        voters = configuration.voters
        return len(voters & group) > len(voters) // 2

    # -- proposals --------------------------------------------------------------------------

    def propose(self, data: bytes | None = None) -> bool:
        """Propose on whichever live node believes it leads; False if none takes it."""
        for node in self.nodes.values():
            core = node.core
            if core is None or node.paused or core.role is not Role.LEADER:
                continue
            payload = data if data is not None else self._payload(len(self.proposed))
            try:
                token = core.propose(node.local(self.now), payload)
            except ControlError:
                return False
            self.proposed.append((node.id, token.term, token.index, payload))
            self._drain(node)
            return True
        return False

    def change(self, op: ChangeOp, target: str) -> bool:
        for node in self.nodes.values():
            core = node.core
            if core is None or node.paused or core.role is not Role.LEADER:
                continue
            try:
                core.propose_change(node.local(self.now), MembershipChange(op, target))
            except ControlError:
                return False
            self._drain(node)
            return True
        return False

    # -- the loop ---------------------------------------------------------------------------

    def run_until(self, t_end: float) -> None:
        while True:
            t_next = t_end
            if self._queue and self._queue[0][0] < t_next:
                t_next = self._queue[0][0]
            due: SimNode | None = None
            for node in self.nodes.values():
                if node.core is None or node.paused:
                    continue
                at = node.sim_time(node.core.next_deadline())
                if at < t_next:
                    t_next, due = max(at, self.now), node
            if t_next >= t_end and not (self._queue and self._queue[0][0] <= t_end):
                self.now = t_end
                self.check_leases()
                return
            self.now = max(self.now, t_next)
            if due is not None and (not self._queue or self._queue[0][0] > t_next):
                assert due.core is not None
                # max(): sim_time() then local() may round a hair below the deadline itself.
                due.core.tick(max(due.local(self.now), due.core.next_deadline()))
                self._drain(due)
            else:
                _, _, sender, to, data = heapq.heappop(self._queue)
                node = self.nodes[to]
                if frozenset((sender, to)) in self.cuts or node.core is None:
                    continue
                if node.paused:
                    node.inbox.append((sender, data))
                    continue
                self._deliver(node, sender, data)
            self.check_leases()

    def _deliver(self, node: SimNode, sender: str, data: bytes) -> None:
        if frozenset((sender, node.id)) in self.cuts:
            return
        frame = decode_frame(data, TCP_FRAME_BYTES)
        message = decode_message(frame.type, frame.body)
        assert node.core is not None
        node.core.handle(node.local(self.now), sender, message)  # type: ignore[arg-type]
        self._drain(node)

    def _send(self, sender: str, to: str, message: RaftMessage) -> None:
        if self.rng.random() < self.net.loss:
            return
        data = encode_frame(Frame(message.TYPE, message.to_map()), TCP_FRAME_BYTES)
        copies = 2 if self.rng.random() < self.net.duplicate else 1
        for _ in range(copies):
            at = self.now + self.rng.uniform(self.net.delay_min, self.net.delay_max)
            heapq.heappush(self._queue, (at, next(self._seq), sender, to, data))

    def _drain(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        while core.has_ready():
            ready = core.ready()
            for out in ready.messages[:ready.early]:  # the leader's appends, before its write
                self._send(node.id, out.to, out.message)
            if ready.early and ready.entries and self.rng.random() < self.torn_writes:
                self.schedule.append(f"{self.now:.3f} crash {node.id} before its write")
                node.core, node.inbox, node.paused = None, [], False
                self.torn.add(node.id)
                return
            node.disk.save(ready)
            if ready.soft_state is not None and ready.soft_state.role is Role.LEADER:
                self._check_new_leader(node, ready.soft_state.term)
            for out in ready.messages[ready.early:]:
                self._send(node.id, out.to, out.message)
            if ready.snapshot is not None:
                self._install(node, ready.snapshot)
            for entry in ready.committed:
                self._apply(node, entry)
            core.advance(ready)
            if core.snapshot_due():
                node.disk.compact(core.compact(core.applied, node.machine.encode()))
        self._check_commit_replicated(node)
        self._check_minority_commit(node)

    # -- checkers ---------------------------------------------------------------------------

    def fail(self, what: str) -> SafetyViolation:
        lines = "\n  ".join(self.schedule[-60:])
        return SafetyViolation(f"seed {self.seed}, t={self.now:.3f}: {what}\n schedule:\n  {lines}")

    def _apply(self, node: SimNode, entry: Entry) -> None:
        machine = node.machine
        if entry.index != machine.index + 1:
            raise self.fail(f"{node.id} applies {entry.index} after {machine.index}")
        machine.apply(entry)
        seen = self.applied.get(entry.index)
        if seen is None:
            self.applied[entry.index] = (entry.term, machine.digest())
            if entry.kind is EntryKind.COMMAND:
                self.proposals_committed += 1
        elif seen != (entry.term, machine.digest()):
            raise self.fail(f"state machine safety: {node.id} applied {entry.index} at term "
                            f"{entry.term}, another node at term {seen[0]}")
        if self.on_apply is not None:
            self.on_apply(node.id, entry)

    def _install(self, node: SimNode, snap: Snapshot) -> None:
        machine = self._new_machine(snap.data)
        seen = self.applied.get(machine.index)
        if seen is not None and seen[1] != machine.digest():
            raise self.fail(f"{node.id} installed a snapshot at {machine.index} unlike what was applied")
        node.machine = machine

    def _check_new_leader(self, node: SimNode, term: int) -> None:
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            raise self.fail(f"election safety: {other} and {node.id} both lead term {term}")
        self.schedule.append(f"{self.now:.3f} leader {node.id} term {term}")
        core = node.core
        assert core is not None
        # Raft §5.4: an entry committed in a term is in the log of every leader of a later term.
        base = core.snapshot.index if core.snapshot else 0
        for index, (entry_term, _) in self.applied.items():
            committed_in = self.committed_in.get(index)
            if (index > base and committed_in is not None and committed_in < term
                    and core.term_at(index) != entry_term):
                raise self.fail(f"leader completeness: leader {node.id} of term {term} lacks "
                                f"entry {index} (term {entry_term}) committed in term {committed_in}")

    def _check_commit_replicated(self, node: SimNode) -> None:
        """Whatever a leader commits is on a majority of its voters' disks (Raft's commit rule)."""
        core = node.core
        assert core is not None
        if core.commit <= self._commits.get(node.id, 0):
            return
        before = self._commits.get(node.id, 0)
        self._commits[node.id] = core.commit
        if core.role is not Role.LEADER:
            return  # followers learn commits; leaders decide them by counting their voters
        for index in range(before + 1, core.commit + 1):
            self.committed_in.setdefault(index, core.term)
        term = core.term_at(core.commit)
        if term is None:
            return  # covered by an installed snapshot: committed elsewhere first
        holders = [n.id for n in self.nodes.values() if n.id in core.configuration.voters
                   and self._disk_term(n, core.commit) in (term, COMPACTED)]
        if len(holders) <= len(core.configuration.voters) // 2:
            raise self.fail(f"{node.id} committed {core.commit} (term {term}) held only by {holders}")

    @staticmethod
    def _disk_term(node: SimNode, index: int) -> int | None:
        return node.disk.term_at(index)

    def _check_minority_commit(self, node: SimNode) -> None:
        before = self.commit_watch.get(node.id)
        if before is not None and node.core is not None and node.core.commit > before:
            raise self.fail(f"{node.id} committed {node.core.commit} inside a minority, above "
                            f"{before}, the last index its side held at the cut")

    def check_leases(self) -> None:
        leased = [n.id for n in self.nodes.values()
                  if n.core is not None and n.core.is_leader_with_lease(n.local(self.now))]
        if len(leased) > 1:
            raise self.fail(f"two leaders hold a lease at once: {leased}")

    def check_log_matching(self) -> None:
        cores = [(n.id, n.core) for n in self.nodes.values() if n.core is not None]
        for (a, ca), (b, cb) in itertools.combinations(cores, 2):
            low = max(ca.entries(1)[0].index if ca.entries(1) else ca.last_index + 1,
                      cb.entries(1)[0].index if cb.entries(1) else cb.last_index + 1)
            high = min(ca.last_index, cb.last_index)
            matched = False
            for index in range(high, low - 1, -1):
                ta, tb = ca.term_at(index), cb.term_at(index)
                if matched and ta != tb:
                    raise self.fail(f"log matching: {a} and {b} agree at a later index but differ at {index}")
                if ta == tb:
                    matched = True
                    if ca.entries(index, index) != cb.entries(index, index):
                        raise self.fail(f"log matching: {a} and {b} hold different entries at {index}")

    # -- observations -------------------------------------------------------------------------

    def leased_leader(self) -> str | None:
        for n in self.nodes.values():
            if n.core is not None and not n.paused and n.core.is_leader_with_lease(n.local(self.now)):
                return n.id
        return None

    def run_until_leader(self, limit: float, step: float = 0.01) -> str | None:
        """Run until some node holds a lease, or `limit` simulated seconds pass."""
        end = self.now + limit
        while self.now < end:
            leader = self.leased_leader()
            if leader is not None:
                return leader
            self.run_until(min(end, self.now + step))
        return self.leased_leader()

    def converged(self) -> bool:
        """Every live node has applied the same, latest index."""
        live = [n for n in self.nodes.values() if n.core is not None]
        indexes = {n.machine.index for n in live}
        return len(indexes) == 1 and max(self.applied, default=0) in indexes
