"""What every chaos run checks once its faults are healed, and the report it prints.

(a) every acknowledged write (and every write stored before a 503 "quorum not reached") is
    served by every node (the body must be that key), once healed and every node is back;
(b) all merkle_root values become equal by themselves (no forced sync) within the bound;
(c) no acknowledged delete is undone: the key is served by no node;
(d) membership reconverges: every node lists every node alive;
and no node process exited on its own or logged an error (every `level=ERROR` line of meshkp
is a bug or a failed write: see `log.error`/`log.exception` in meshkp/). Reconvergence is
timed from the moment the last fault was healed, and nothing forces a sync: it measures what
gossip and anti-entropy do alone, and a miss of the bound fails the run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chaos.cluster import ChaosCluster
from chaos.problem_lines import problem_lines
from chaos.workload import Ledger

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass
class RunReport:
    """One chaos run's figures; `problems()` lists every violated invariant."""

    name: str
    nodes: int
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    ledger: dict[str, object] = field(default_factory=dict)
    lost: dict[str, list[str]] = field(default_factory=dict)  # fingerprint -> nodes without it
    resurrected: dict[str, list[str]] = field(default_factory=dict)
    quorum_short: list[str] = field(default_factory=list)
    members_reconverged_s: float | None = None
    roots_reconverged_s: float | None = None
    roots_equal: bool = False
    all_alive: bool = False
    crashed: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    verified: bool = False  # verify() ran to the end
    extra: dict[str, object] = field(default_factory=dict)

    def problems(self) -> list[str]:
        if not self.verified:
            return []  # the test failed before the checks; its own error says why
        found = problem_lines([
            ("acknowledged writes lost", self.lost),
            ("deleted keys served again", self.resurrected),
            ("quorum acks not held by a quorum", self.quorum_short),
        ])
        if not self.roots_equal:
            found.append("merkle roots did not become equal by themselves within the bound")
        if not self.all_alive:
            found.append("membership did not reconverge to all alive")
        return found + problem_lines([
            ("node processes exited on their own", self.crashed),
            ("error lines in node logs", self.log_errors),
        ])

    def line(self) -> str:
        """The short report printed at the end of the run."""
        if not self.verified:
            return f"chaos run={self.name} nodes={self.nodes} stopped before the checks (see its failure)"
        def secs(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f}s"
        led = self.ledger
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        return (
            f"chaos run={self.name} nodes={self.nodes} seconds={self.seconds:.0f} "
            f"writes_acked={led.get('writes_acked')} (by level {led.get('acked_by_level')}) "
            f"stored_503={led.get('writes_stored_503')} uncertain={led.get('writes_uncertain')} "
            f"deletes_acked={led.get('deletes_acked')} "
            f"lost={len(self.lost)} resurrected={len(self.resurrected)} "
            f"reconverge: members={secs(self.members_reconverged_s)} "
            f"roots={secs(self.roots_reconverged_s)} roots_equal={self.roots_equal} "
            f"{extra}".rstrip()
        )

    def save(self) -> Path:
        OUT_DIR.mkdir(exist_ok=True)
        path = OUT_DIR / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        return path


def error_lines(root: Path) -> list[str]:
    """`level=ERROR` and traceback lines of every node log under root."""
    found = []
    for log in sorted(root.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "level=ERROR" in line or line.startswith("Traceback"):
                found.append(f"{log.stem}: {line[:300]}")
    return found


def measure_reconvergence(
    cluster: ChaosCluster, report: RunReport, healed_at: float, timeout: float
) -> None:
    """Time from `healed_at` (monotonic) until all nodes list all alive, and all roots agree."""
    began = healed_at
    while time.monotonic() - began < timeout:
        now = time.monotonic() - began
        if report.members_reconverged_s is None and cluster.all_alive():
            report.members_reconverged_s = now
        if report.roots_reconverged_s is None and cluster.roots_equal():
            report.roots_reconverged_s = time.monotonic() - began
        if report.members_reconverged_s is not None and report.roots_reconverged_s is not None:
            return
        time.sleep(0.25)


def verify(cluster: ChaosCluster, ledger: Ledger, report: RunReport, healed_at: float,
           reconverge_timeout: float = 90.0) -> RunReport:
    """After healing at `healed_at`: time reconvergence, final sync, check (a)-(d)."""
    # Every node back first (a killed one restarted, a paused one resumed), so all are checked.
    report.crashed = [cluster.node_id(i) for i in cluster.crashed()]
    cluster.restart_all()
    for i in list(cluster.paused):
        cluster.resume(i)
    # No forced sync: a mesh that does not reconverge by itself within the bound fails.
    measure_reconvergence(cluster, report, healed_at, reconverge_timeout)
    report.roots_equal = report.roots_reconverged_s is not None
    report.all_alive = report.members_reconverged_s is not None
    must = ledger.must_be_present()
    deleted = sorted(ledger.deleted)
    for i in range(cluster.n):
        present = cluster.served(must, i)
        for fpr, ok in present.items():
            if not ok:
                report.lost.setdefault(fpr, []).append(cluster.node_id(i))
        for fpr, ok in cluster.served(deleted, i).items():
            if ok:
                report.resurrected.setdefault(fpr, []).append(cluster.node_id(i))
    status = cluster.get_json(cluster.running()[0], "/cluster/sync/status") or {}
    report.extra["keys"] = status.get("keys")
    report.extra["tombstones"] = status.get("tombstones")
    report.extra["conflicts"] = status.get("conflicts")
    report.quorum_short = list(ledger.quorum_short)
    report.ledger = ledger.summary()
    report.crashed += [cluster.node_id(i) for i in cluster.crashed()
                       if cluster.node_id(i) not in report.crashed]
    report.crashed += [f"{node} (found dead before a kill)" for node in cluster.exited]
    report.log_errors = error_lines(cluster.root)
    report.seconds = time.monotonic() - report.started
    report.verified = True
    report.save()
    return report
