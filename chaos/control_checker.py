"""The control plane under faults: a stream of policy changes, leader nemeses, and a checker.

`PolicyWriter` sends `PUT /cluster/policy {"limits": {"search_results": V}}` with a new V each
time, to random nodes of its allowed set (a follower forwards to the leader), recording each in
the History (kind `policy`, key V): ok = 200 (committed and applied on the answering node),
fail = 4xx, info = 503 or no answer (it may still commit: Raft does not say).

`check_control` proves, from every node's audit trail (`GET /cluster/audit`, the applied log):
- no committed change lost: every V that got a 200 is in every node's audit trail (or older
  than the oldest acked entry it keeps: a node keeps only the latest MAX_AUDIT entries);
- no two nodes applied different entries at one position: the audit trails agree entry by entry
  (seq, token = term.index, op, detail) on their common prefix, and are all equally long;
- a minority never commits: no V sent to a node of a minority side while it was cut off got a
  200, and no such V appears in any audit trail unless it could have been forwarded before;
- every node ends at the same policy version (the runner's convergence: policy_s).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.cluster import ChaosCluster
from chaos.history import FAIL, INFO, OK, History
from chaos.problem_lines import problem_lines
from meshkp.control.policy.bounds import MAX_AUDIT

AUDIT_PAGE = 500
MAX_POLICY_OPS = 600
POLICY_TIMEOUT_S = 8.0


def leader_of(cluster: ChaosCluster) -> int | None:
    """The node that says it leads with its lease (authoritative), or None."""
    for i in cluster.running():
        body = cluster.get_json(i, "/cluster/leader")
        if body and body.get("authoritative") and body.get("leader") == cluster.node_id(i):
            return i
    return None


class PolicyWriter:
    def __init__(self, cluster: ChaosCluster, history: History, targets: Callable[[int], list[int]],
                 seed: int = 1, interval_s: float = 0.1, first_value: int = 1000,
                 max_ops: int = MAX_POLICY_OPS) -> None:
        self.cluster, self.history, self.targets = cluster, history, targets
        self.rng = random.Random(seed)
        self.interval_s = interval_s
        self.max_ops = max_ops
        self.value = first_value
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="chaos-policy", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(POLICY_TIMEOUT_S * 3)

    def _run(self) -> None:
        try:
            for n in range(self.max_ops):
                if self.stopping.is_set():
                    return
                # Alternate between the sides a fault made (each side's writer slot in turn).
                choices = [i for i in self.targets(n) if self.cluster.nodes[i] is not None]
                if choices:
                    self._put(self.rng.choice(choices))
                self.stopping.wait(self.interval_s)
        except BaseException as exc:
            self.errors.append(exc)

    def _put(self, i: int) -> None:
        self.value += 1
        node = self.cluster.nodes[i]
        if node is None:
            return
        op = self.history.invoke("policy", i, "policy", str(self.value))
        body = json.dumps({"limits": {"search_results": self.value}}).encode()
        try:
            reply = node.request("PUT", "/cluster/policy", body=body, timeout=POLICY_TIMEOUT_S,
                                 headers={"Authorization": f"Bearer {self.cluster.token(i)}",
                                          "Content-Type": "application/json"})
        except OSError:
            self.history.complete(op, INFO)
            return
        if reply.status == 200:
            self.history.complete(op, OK, 200)
        elif reply.status >= 500:
            self.history.complete(op, INFO, reply.status)
        else:
            self.history.complete(op, FAIL, reply.status, reply.text[:200])


def audit_trail(cluster: ChaosCluster, i: int) -> list[dict[str, object]] | None:
    """Every audit entry node i applied, in order; None if it does not answer."""
    entries: list[dict[str, object]] = []
    after = 0
    for _ in range(10_000):  # bounded: 500 entries a page
        body = cluster.get_json(i, f"/cluster/audit?after={after}&limit={AUDIT_PAGE}")
        if body is None:
            return None
        page = body.get("entries") or []
        if not page:
            return entries
        entries.extend(page)
        after = int(body["next_after"])
    return entries


@dataclass
class ControlResult:
    committed: int = 0
    refused: int = 0
    uncertain: int = 0
    lost: list[str] = field(default_factory=list)
    divergent: list[str] = field(default_factory=list)
    minority_commits: list[str] = field(default_factory=list)
    audit_lengths: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return problem_lines([
            ("committed policy changes lost", self.lost),
            ("differences between the nodes' applied entries", self.divergent),
            ("policy changes committed by a minority", self.minority_commits),
        ])


def _value_of(entry: dict[str, object]) -> str | None:
    detail = str(entry.get("detail", ""))
    marker = "search_results="
    if entry.get("op") != "set-limits" or marker not in detail:
        return None
    return detail.split(marker, 1)[1].split()[0].strip(",;")


def kept_since(trail: list[dict[str, object]], acked_and_kept: set[str]) -> int:
    """The value below which an acked change may be missing from `trail` without being lost.

    A node keeps only the latest MAX_AUDIT entries. The one writer sends its changes one after
    another with rising values, so acked changes commit in value order: every acked value above
    the smallest acked one still kept committed after it, and must be kept too."""
    if len(trail) < MAX_AUDIT:
        return -1  # nothing dropped yet: every acked change must be there
    return min((int(v) for v in acked_and_kept), default=1 << 62)


def check_control(cluster: ChaosCluster, history: History,
                  minority_windows: list[tuple[float, float, list[int]]]) -> ControlResult:
    """See the module doc; `minority_windows`: (from, to, nodes) a minority was cut off."""
    ops = [o for o in history.snapshot()[0] if o.kind == "policy"]
    result = ControlResult(committed=sum(o.result == OK for o in ops),
                           refused=sum(o.result == FAIL for o in ops),
                           uncertain=sum(o.result == INFO for o in ops))
    trails: dict[int, list[dict[str, object]]] = {}
    for i in range(cluster.n):
        trail = audit_trail(cluster, i)
        if trail is None:
            result.divergent.append(f"n{i} did not answer /cluster/audit")
            continue
        trails[i] = trail
        result.audit_lengths[cluster.node_id(i)] = len(trail)
    if not trails:
        return result
    reference_node = max(trails, key=lambda i: len(trails[i]))
    reference = trails[reference_node]
    keys = ("seq", "token", "op", "detail", "outcome")
    for i, trail in trails.items():
        if len(trail) != len(reference):
            result.divergent.append(f"n{i} applied {len(trail)} entries, n{reference_node} {len(reference)}")
        for a, b in zip(trail, reference, strict=False):
            if any(a.get(k) != b.get(k) for k in keys):
                result.divergent.append(f"n{i} seq {a.get('seq')}: {a} != n{reference_node}: {b}")
                break
    acked = [o for o in ops if o.result == OK]
    for i, trail in trails.items():
        applied = {v for e in trail if (v := _value_of(e)) is not None}
        oldest = kept_since(trail, {o.key for o in acked} & applied)
        for o in acked:
            if o.key not in applied and int(o.key) > oldest:
                result.lost.append(f"{o.key} (acked by n{o.node}) missing on n{i}")
    for begin, end, nodes in minority_windows:
        for o in ops:
            if o.node in nodes and begin + 1.0 < o.invoke and (o.complete or end) < end \
                    and o.result == OK:
                result.minority_commits.append(f"{o.key} acked by n{o.node} at {o.invoke:.1f}s")
    return result
