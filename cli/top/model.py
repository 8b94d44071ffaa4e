"""What `meshkp top` shows, computed from the nodes' replies: pure functions, no I/O."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Unicode blocks, lowest to highest: one per sample of a sparkline.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
LEADER_MARK = "★"
# Polls of requests/s kept per node: the sparkline's width.
HISTORY_LEN = 12


@dataclass
class MemberRow:
    """One member as its own HTTP API describes it (fields None when it did not answer)."""

    id: str
    status: str = "?"  # as the polled node's membership sees it
    incarnation: int | None = None
    http: str = ""
    reachable: bool = False
    error: str = ""
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    policy_version: int | None = None
    keys: int | None = None
    merkle_root: str | None = None
    pending: int | None = None
    conflicts: int | None = None
    sync_age_s: float | None = None  # since its last completed anti-entropy round
    drain: bool = False
    read_only: bool = False
    weight: int | None = None
    zone: str = ""
    # From /cluster/load (the polled node's, or the member's own when that one is stale):
    rtt_ms: float | None = None  # the polled node's last exchange with it
    last_contact_s: float | None = None
    load_age_s: float | None = None
    sampled_at: float | None = None
    reach: frozenset[str] | None = None  # the peers it reached (None: unknown)
    agent_percent: int | None = None
    client_rate: float | None = None  # of the latest sample
    client_p99: float | None = None  # ms
    rates: list[float] = field(default_factory=list)  # client requests/s, oldest first
    p99s: list[float] = field(default_factory=list)  # worst client p99 (ms), oldest first


@dataclass
class Snapshot:
    """One poll of the whole cluster."""

    source: str  # the URL whose /cluster/nodes gave the member list
    start_url: str  # the URL given on the command line
    self_id: str = ""
    members: list[MemberRow] = field(default_factory=list)
    error: str = ""  # set when no member answered /cluster/nodes
    polls: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)  # (Unix time, what), oldest first

    @property
    def leader(self) -> str | None:
        return leader_of(self.members)

    @property
    def majority_root(self) -> str | None:
        return majority_root(m.merkle_root for m in self.members if m.reachable)

    @property
    def policy_version(self) -> int | None:
        versions = [m.policy_version for m in self.members if m.policy_version is not None]
        return max(versions) if versions else None

    @property
    def conflicts(self) -> int:
        return max((m.conflicts or 0 for m in self.members), default=0)


def majority_root(roots: Iterable[str | None]) -> str | None:
    """The Merkle root more than half of the answering members hold, else None (no majority)."""
    answered = [r for r in roots if r is not None]
    if not answered:
        return None
    root, count = Counter(answered).most_common(1)[0]
    return root if count * 2 > len(answered) else None


def leader_of(members: Iterable[MemberRow]) -> str | None:
    """The leader named by the answering members of the highest term (a stale term loses)."""
    named = [(m.term or 0, m.leader) for m in members if m.reachable and m.leader]
    if not named:
        return None
    top = max(term for term, _ in named)
    votes = Counter(leader for term, leader in named if term == top)
    return votes.most_common(1)[0][0]


def member_label(member_id: str, leader: str | None) -> str:
    """The id as the table shows it: the leader gets a ★ in front."""
    return f"{LEADER_MARK}{member_id}" if member_id == leader else f" {member_id}"


def sparkline(values: Sequence[float], width: int = HISTORY_LEN) -> str:
    """The last `width` values as unicode blocks scaled to their maximum ("" if none)."""
    values = list(values)[-width:]
    if not values:
        return ""
    peak = max(values)
    if peak <= 0:
        return SPARK_BLOCKS[0] * len(values)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[min(top, int(v / peak * top + 0.5))] for v in values)


class LoadHistory:
    """Client requests/s and p99 per node, one point per load sample (by its `sampled_at`)."""

    def __init__(self, length: int = HISTORY_LEN) -> None:
        self.length = length
        self._seen: dict[str, float] = {}
        self._rates: dict[str, deque[float]] = {}
        self._p99s: dict[str, deque[float]] = {}

    def update(self, node: str, sampled_at: float | None, rate: float | None,
               p99_ms: float | None) -> tuple[list[float], list[float]]:
        """Add the sample taken at `sampled_at` unless it was added already; the histories."""
        rates = self._rates.setdefault(node, deque(maxlen=self.length))
        p99s = self._p99s.setdefault(node, deque(maxlen=self.length))
        if sampled_at is not None and rate is not None and self._seen.get(node) != sampled_at:
            self._seen[node] = sampled_at
            rates.append(rate)
            p99s.append(p99_ms if p99_ms is not None else 0.0)  # no request: no latency
        return list(rates), list(p99s)


def failover_order(start_url: str, current: str, members: Iterable[MemberRow]) -> list[str]:
    """URLs to ask for /cluster/nodes, best first: the current source, then the alive members'
    http addresses (sorted by id), then the URL given on the command line."""
    order = [current]
    for member in sorted(members, key=lambda m: m.id):
        if member.status == "alive" and member.http:
            order.append(http_url(member.http))
    order.append(start_url)
    return list(dict.fromkeys(order))


def http_url(address: str) -> str:
    """A member's meta "http" (HOST:PORT) as a URL."""
    return address if "://" in address else f"http://{address}"


SORT_KEYS = ("id", "status", "role", "keys", "req/s", "p99", "rtt")
STATUS_ORDER = {"alive": 0, "suspect": 1, "dead": 2, "left": 3}


def sort_rows(rows: Sequence[MemberRow], column: str, leader: str | None) -> list[MemberRow]:
    """Rows ordered by one of SORT_KEYS (numbers highest first, then by id)."""
    def key(m: MemberRow) -> tuple[object, ...]:
        if column == "status":
            return (STATUS_ORDER.get(m.status, 9), not m.reachable, m.id)
        if column == "role":
            return (m.id != leader, m.role or "~", m.id)
        if column == "keys":
            return (-(m.keys if m.keys is not None else -1), m.id)
        if column == "req/s":
            return (-(m.rates[-1] if m.rates else -1.0), m.id)
        if column == "p99":
            return (-(m.p99s[-1] if m.p99s else -1.0), m.id)
        if column == "rtt":
            return (-(m.rtt_ms if m.rtt_ms is not None else -1.0), m.id)
        return (m.id,)
    return sorted(rows, key=key)


def filter_rows(rows: Iterable[MemberRow], text: str) -> list[MemberRow]:
    """Rows whose id contains `text` (case-insensitive); all when it is empty."""
    needle = text.lower()
    return [m for m in rows if needle in m.id.lower()]
