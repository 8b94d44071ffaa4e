"""A Jepsen set-full style checker over a recorded history (chaos/history.py).

The set is the keys: an `add` puts a fingerprint in, an admin `delete` takes it out for good.
After the faults are healed every node is read (`final`: node -> fingerprint -> present, absent
or wrong, where "wrong" is a 200 whose body is not that key). The checker reports:

- lost: acknowledged (ok) and never deleted, yet absent from a node's final read;
- never_read: acknowledged and never deleted, and no read anywhere ever saw it (not even a
  final one: the node that should hold it did not answer);
- unexpected: a read saw a key no add ever sent, or a body that is not the key asked for;
- resurrected: an acknowledged delete whose key a final read (or a later read on the node
  that deleted it) serves again;
- stale: a read that missed a key after an `x-consistency: all` ack of it had completed, or a
  quorum ack that fewer than the quorum nodes hold (`quorum-check` ops);
- latency from the ack to visible on every node (p50/p95/p99, from the visibility tracker);
- availability of each side of each partition (ok / attempted writes sent to that side);
- the convergence times the runner measured after each heal (members, roots, policy).

`info` writes (no answer) are neither lost nor unexpected. Nothing here is about speed: the
bounds a run must meet (no lost, no resurrected, no stale, converged within its bound) are
behaviour, and the latencies are reported, not asserted.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chaos.history import FAIL, INFO, OK, Event, History, Op
from chaos.problem_lines import problem_lines

PRESENT, ABSENT, WRONG = "present", "absent", "wrong"


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class SideAvailability:
    fault: str
    side: list[int]
    attempted: int
    ok: int

    @property
    def ratio(self) -> float | None:
        return None if self.attempted == 0 else self.ok / self.attempted


@dataclass
class CheckResult:
    acked: int = 0
    acked_by_level: dict[str, int] = field(default_factory=dict)
    stored_503: int = 0
    uncertain: int = 0
    failed: int = 0
    deletes_acked: int = 0
    reuploads_after_delete: dict[str, int] = field(default_factory=dict)
    lost: dict[str, list[int]] = field(default_factory=dict)
    never_read: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resurrected: dict[str, list[int]] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    visible_latency_s: dict[str, float | None] = field(default_factory=dict)
    visible_samples: int = 0
    # The same for writes acknowledged while no fault was active.
    visible_latency_quiet_s: dict[str, float | None] = field(default_factory=dict)
    availability: list[SideAvailability] = field(default_factory=list)
    convergence: list[dict[str, object]] = field(default_factory=list)
    unconverged: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return problem_lines([
            ("acknowledged writes lost", self.lost),
            ("acknowledged writes never read", self.never_read),
            ("unexpected reads", self.unexpected),
            ("deleted keys served again", self.resurrected),
            ("stale reads after quorum/all writes", self.stale),
            ("heals not converged within their bound", self.unconverged),
        ])

    @property
    def valid(self) -> bool:
        return not self.problems()

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["valid"] = self.valid
        data["problems"] = self.problems()
        data["availability"] = [{**asdict(a), "ratio": a.ratio} for a in self.availability]
        return data

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")


def check(history: History, final: dict[int, dict[str, str]], visible_at: dict[str, float],
          convergence: list[dict[str, object]] | None = None) -> CheckResult:
    """Check a history against the final reads of every node; see the module doc."""
    ops, events = history.snapshot()
    result = CheckResult(convergence=list(convergence or []))
    adds = [o for o in ops if o.kind == "add"]
    sent = {o.key for o in adds}
    ok_add: dict[str, Op] = {}
    for o in adds:
        if o.process == "reupload":
            continue
        if o.result == OK:
            ok_add.setdefault(o.key, o)
            if o.value == "stored-503":  # quorum not reached in time, stored: must not be lost
                result.stored_503 += 1
            else:
                result.acked_by_level[o.level] = result.acked_by_level.get(o.level, 0) + 1
        elif o.result == INFO:
            result.uncertain += 1
        elif o.result == FAIL:
            result.failed += 1
    result.acked = sum(result.acked_by_level.values())
    deletes = [o for o in ops if o.kind == "delete"]
    deleted_ok = {o.key: o for o in deletes if o.result == OK}
    deleted_maybe = {o.key for o in deletes if o.result == INFO}
    result.deletes_acked = len(deleted_ok)
    for o in adds:
        if o.process == "reupload":
            label = str(o.status) if o.status is not None else "none"
            result.reuploads_after_delete[label] = result.reuploads_after_delete.get(label, 0) + 1

    reads = [o for o in ops if o.kind == "read" and o.result == OK]
    seen = {o.key for o in reads if o.value == PRESENT}
    seen |= {fpr for answers in final.values() for fpr, v in answers.items() if v == PRESENT}
    for o in reads:
        if o.value == WRONG or (o.value == PRESENT and o.key not in sent):
            result.unexpected.append(f"{o.key} on n{o.node} at {o.invoke:.1f}s: {o.value}")
    for node, answers in final.items():
        for fpr, value in answers.items():
            if value == WRONG or (value == PRESENT and fpr not in sent):
                result.unexpected.append(f"{fpr} on n{node} (final): {value}")

    live = {k: o for k, o in ok_add.items() if k not in deleted_ok and k not in deleted_maybe}
    lost: dict[str, list[int]] = defaultdict(list)
    for node, answers in final.items():
        for fpr in live:
            if answers.get(fpr) == ABSENT:
                lost[fpr].append(node)
    result.lost = dict(lost)
    result.never_read = sorted(k for k in live if k not in seen)

    resurrected: dict[str, list[int]] = defaultdict(list)
    for fpr in deleted_ok:
        for node, answers in final.items():
            if answers.get(fpr) == PRESENT:
                resurrected[fpr].append(node)
    for o in reads:
        d = deleted_ok.get(o.key)
        if d is not None and d.complete is not None and o.node == d.node and o.invoke > d.complete \
                and o.value == PRESENT:
            resurrected[o.key].append(o.node)
    result.resurrected = dict(resurrected)

    deleted_at = {o.key: o.invoke for o in deletes}
    for o in ops:
        # A delete that began before the check ended may have removed it from some nodes.
        racing = o.key in deleted_at and o.complete is not None and deleted_at[o.key] < o.complete
        if o.kind == "quorum-check" and o.value == "short" and not racing:
            result.stale.append(f"quorum ack of {o.key} held by too few nodes ({o.status})")
    all_acks = {k: o for k, o in ok_add.items() if o.level == "all" and o.complete is not None}
    for o in reads:
        ack = all_acks.get(o.key)
        if ack is not None and ack.complete is not None and o.invoke > ack.complete \
                and o.value == ABSENT and o.key not in deleted_ok and o.key not in deleted_maybe:
            late = o.invoke - ack.complete
            result.stale.append(f"{o.key} absent on n{o.node} {late:.2f}s after its all-ack")

    latencies = [visible_at[k] - o.complete for k, o in ok_add.items()
                 if k in visible_at and o.complete is not None]
    result.visible_samples = len(latencies)
    result.visible_latency_s = {name: percentile(latencies, q)
                                for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    spans = fault_spans(events)
    quiet = [visible_at[k] - o.complete for k, o in ok_add.items() if k in visible_at
             and o.complete is not None and not any(a <= o.complete <= b for a, b in spans)]
    result.visible_latency_quiet_s = {name: percentile(quiet, q)
                                      for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    result.availability = availability(adds, events)
    result.unconverged = [str(c.get("after")) for c in result.convergence if not c.get("converged")]
    return result


def fault_spans(events: list[Event]) -> list[tuple[float, float]]:
    """(start, stop) history times of every fault."""
    spans, starts = [], {}
    for e in events:
        if e.phase == "start":
            starts[e.fault] = e.at
        elif e.fault in starts:
            spans.append((starts.pop(e.fault), e.at))
    return spans


def availability(adds: list[Op], events: list[Event]) -> list[SideAvailability]:
    """Per fault with sides: ok / attempted writes sent to each side while it lasted."""
    found = []
    starts: dict[str, Event] = {}
    for e in events:
        if e.phase == "start":
            starts[e.fault] = e
        elif e.phase == "stop" and e.fault in starts:
            begin = starts.pop(e.fault)
            for side in begin.sides:
                window = [o for o in adds if o.node in side and begin.at <= o.invoke <= e.at
                          and o.process != "reupload"]
                # Available = answered 200; a 503 "quorum not reached" is not, stored or not.
                found.append(SideAvailability(begin.fault, side, len(window),
                                              sum(1 for o in window if o.status == 200)))
    return found


def summary_table(name: str, result: CheckResult) -> str:
    """The rich summary table of one run, rendered as text."""
    from rich.console import Console
    from rich.table import Table

    def secs(value: object) -> str:
        return "-" if value is None else f"{float(value):.2f} s"  # type: ignore[arg-type]

    table = Table(title=f"chaos {name}: {'VALID' if result.valid else 'INVALID'}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("acknowledged writes (200)", f"{result.acked} {result.acked_by_level}"),
        ("stored, then 503 quorum not reached", str(result.stored_503)),
        ("uncertain (no answer) / refused", f"{result.uncertain} / {result.failed}"),
        ("deletes acknowledged", str(result.deletes_acked)),
        ("re-uploads after delete (status: count)", str(result.reuploads_after_delete)),
        ("lost", str(len(result.lost))),
        ("never read", str(len(result.never_read))),
        ("unexpected", str(len(result.unexpected))),
        ("resurrected", str(len(result.resurrected))),
        ("stale after quorum/all", str(len(result.stale))),
        ("ack -> visible everywhere p50/p95/p99",
         " / ".join(secs(result.visible_latency_s.get(k)) for k in ("p50", "p95", "p99"))
         + f" (n={result.visible_samples})"),
        ("  the same, acked outside faults",
         " / ".join(secs(result.visible_latency_quiet_s.get(k)) for k in ("p50", "p95", "p99"))),
    ]
    for a in result.availability:
        ratio = "-" if a.ratio is None else f"{a.ratio:.0%}"
        rows.append((f"availability {a.fault} side {a.side}", f"{ratio} of {a.attempted}"))
    for c in result.convergence:
        rows.append((f"heal -> converged after {c.get('after')}",
                     f"members {secs(c.get('members_s'))}, roots {secs(c.get('roots_s'))}, "
                     f"policy {secs(c.get('policy_s'))}"
                     + (f" (writers paused at {secs(c['quiesced_s'])})" if "quiesced_s" in c else "")))
    for label, value in rows:
        table.add_row(label, value)
    out = io.StringIO()
    Console(width=120, file=out).print(table)
    return out.getvalue()
