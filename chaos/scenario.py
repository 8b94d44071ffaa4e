"""One chaos scenario from start to verdict: writers and the visibility tracker run while the
nemeses strike and heal in turn; then every node is brought back, convergence is timed WITHOUT
any forced sync (a mesh that does not reconverge by itself within the bound fails), every node
is read, and the checker (chaos/checker.py) judges the history.

Besides the checker's anomalies a scenario fails on: a node process that exited on its own, an
ERROR line or traceback in a node log, a re-upload the tombstone's own node took, and a writer
thread that raised. Results go to chaos/out/NAME.json (+ NAME.history.json, and NAME.png when
matplotlib is installed: `pip install -e '.[chaos]'`).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chaos.checker import CheckResult, check, summary_table
from chaos.clients import MAX_OPS_PER_WRITER, VisibilityTracker, Writers, final_reads, reupload_problems
from chaos.cluster import ChaosCluster, poll
from chaos.control_checker import MAX_POLICY_OPS, PolicyWriter, check_control
from chaos.history import History
from chaos.invariants import OUT_DIR, error_lines
from chaos.nemesis import Nemesis
from chaos.timeline import plot

# Convergence after the last heal must happen by itself within this. Behaviour, not speed: the
# goal is one sync interval (10 s); the bound leaves room for a loaded 2-core machine.
CONVERGE_BOUND_S = 90.0


@dataclass
class Scenario:
    name: str
    nemeses: list[Nemesis]
    hold_s: float = 15.0  # each fault lasts this long
    warmup_s: float = 3.0
    after_s: float = 3.0  # writes go on this long after the last heal
    writers: int = 3
    seed: int = 1
    converge_bound_s: float = CONVERGE_BOUND_S
    control: bool = False  # also stream policy changes and run the control checker
    # Pause the writers this long after a heal if the roots still differ (long runs: with many
    # nodes the keys in flight keep every root different while writes go on; see converge()).
    quiesce_after_s: float | None = None
    # Bounds of the writers' loops (None: the defaults of chaos/clients.py and control_checker.py,
    # which a few-minute scenario never reaches; a long run scales them to its length).
    max_writer_ops: int | None = None
    max_policy_ops: int | None = None


@dataclass
class Outcome:
    name: str
    result: CheckResult
    problems: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    table: str = ""


def policy_version(cluster: ChaosCluster, i: int) -> object:
    body = cluster.get_json(i, "/cluster/policy")
    return None if body is None else body.get("version")


def converge(cluster: ChaosCluster, after: str, bound_s: float, writers: Writers | None = None,
             quiesce_after_s: float | None = None) -> dict[str, object]:
    """Seconds from now until members all alive, roots equal and policy versions equal, on
    every node (all must be running); no POST /cluster/sync.

    With `quiesce_after_s`, `writers` are paused if the roots still differ that long after the
    heal, and resumed at the end: `quiesced_s` says when. Roots equal only soon after the pause
    mean the writes in flight were a moving target (every node's root differs while keys
    spread), not that anti-entropy failed; roots that still differ mean it did."""
    began = time.monotonic()
    found: dict[str, object] = {"after": after}
    everyone = list(range(cluster.n))

    def versions_equal() -> bool:
        versions = [policy_version(cluster, i) for i in everyone]
        return None not in versions and len(set(map(str, versions))) == 1

    checks = {"members_s": lambda: cluster.all_alive(everyone), "roots_s": cluster.roots_equal,
              "policy_s": versions_equal}
    try:
        while time.monotonic() - began < bound_s and not all(name in found for name in checks):
            elapsed = time.monotonic() - began
            if (writers is not None and quiesce_after_s is not None and "quiesced_s" not in found
                    and "roots_s" not in found and elapsed >= quiesce_after_s):
                writers.pause()
                found["quiesced_s"] = round(elapsed, 2)
            for name, holds in checks.items():
                if name not in found and holds():
                    found[name] = round(time.monotonic() - began, 2)
            time.sleep(0.25)
    finally:
        if writers is not None:
            writers.resume()
    found["converged"] = all(name in found for name in checks)
    return found


def keys_of(seed: bytes) -> Iterator[tuple[str, str]]:
    from chaos.workload import key_stream

    return key_stream(seed)


def run(cluster: ChaosCluster, scenario: Scenario) -> Outcome:
    """Run `scenario` on a started cluster; the Outcome (problems empty when it passed)."""
    rng = random.Random(scenario.seed)
    history = History()
    tracker = VisibilityTracker(cluster, history)
    active: list[Nemesis] = []

    def targets(w: int) -> list[int]:
        if active:
            return active[-1].targets(cluster, w)
        return list(range(cluster.n))

    writers = Writers(cluster, history, keys_of(f"{scenario.name}-{scenario.seed}".encode()),
                      targets, count=scenario.writers, seed=scenario.seed, on_ack=tracker.acked,
                      max_ops=scenario.max_writer_ops or MAX_OPS_PER_WRITER)
    assert poll(lambda: cluster.all_alive(list(range(cluster.n))), 90) is not None, "the mesh never formed"
    extra: dict[str, object] = {"seed": scenario.seed, "nodes": cluster.n, "profile": cluster.profile,
                                "load_avg": os.getloadavg()}
    convergence = []
    policy = PolicyWriter(cluster, history, targets, seed=scenario.seed,
                          max_ops=scenario.max_policy_ops or MAX_POLICY_OPS)
    tracker.start()
    writers.start()
    if scenario.control:
        policy.start()
    try:
        time.sleep(scenario.warmup_s)
        for nemesis in scenario.nemeses:
            nemesis.start(cluster, history, rng)
            active.append(nemesis)
            time.sleep(scenario.hold_s)
            active.pop()
            nemesis.stop(cluster, history)
            convergence.append(converge(cluster, nemesis.name, scenario.converge_bound_s, writers,
                                        scenario.quiesce_after_s))
        time.sleep(scenario.after_s)
    finally:
        writers.stop()
        if scenario.control:
            policy.stop()
    cluster.restart_all()
    for i in list(cluster.paused):
        cluster.resume(i)
    convergence.append(converge(cluster, "end", scenario.converge_bound_s))
    tracker.drain(30.0)
    tracker.stop()
    sent = sorted(writers.keytext)
    final = final_reads(cluster, sent)
    result = check(history, final, tracker.visible_at, convergence)
    problems = result.problems()
    problems += reupload_problems(history)
    problems += [f"writer raised: {e!r}" for e in writers.errors]
    crashed = [cluster.node_id(i) for i in cluster.crashed()] + cluster.exited
    if crashed:
        problems.append(f"node processes exited on their own: {crashed}")
    errors = error_lines(cluster.root)
    for nemesis in scenario.nemeses:
        # A fault whose one ERROR line is the point (a full disk says so, once per episode).
        expected = getattr(nemesis, "expected_error", "")
        if expected:
            said = [line for line in errors if expected in line]
            if len(said) > 1:
                problems.append(f"{expected} logged {len(said)} times for one fault, not once")
            errors = [line for line in errors if expected not in line]
    if errors:
        problems.append(f"{len(errors)} error lines in node logs: {errors[:3]}")
    for nemesis in scenario.nemeses:
        refusal = getattr(nemesis, "refusal", None)
        if refusal is not None:
            extra["corrupt_refusal"] = refusal[-300:]
            if "damaged" not in refusal or "move" not in refusal:
                problems.append(f"a node on a damaged store did not refuse to start with the remedy: "
                                f"{refusal[-300:]!r}")
    for nemesis in scenario.nemeses:
        problems += nemesis.problems()
    notes = [note for nemesis in scenario.nemeses if (note := nemesis.note())]
    if notes:
        extra["faults"] = notes
    if scenario.control:
        control = check_control(cluster, history, minority_windows(scenario.nemeses, history))
        extra["control"] = {"committed": control.committed, "refused": control.refused,
                            "uncertain": control.uncertain, "audit_lengths": control.audit_lengths}
        problems += control.problems()
        problems += [f"policy writer raised: {e!r}" for e in policy.errors]
    extra["seconds"] = round(history.now(), 1)
    outcome = Outcome(scenario.name, result, problems, extra, summary_table(scenario.name, result))
    save(outcome, history)
    return outcome


def minority_windows(nemeses: list[Nemesis], history: History) -> list[tuple[float, float, list[int]]]:
    """(start, stop, nodes) of each fault that cut off a minority (`minority` attribute).

    The k-th nemesis of a name owns the k-th start and stop event of that name (a long run
    draws the same fault several times, each with its own minority)."""
    events = history.snapshot()[1]
    windows = []
    seen: dict[str, int] = {}
    for nemesis in nemeses:
        k = seen.get(nemesis.name, 0)
        seen[nemesis.name] = k + 1
        minority = getattr(nemesis, "minority", None)
        if not minority:
            continue
        starts = [e.at for e in events if e.fault == nemesis.name and e.phase == "start"]
        stops = [e.at for e in events if e.fault == nemesis.name and e.phase == "stop"]
        if k < len(starts) and k < len(stops):
            windows.append((starts[k], stops[k], list(minority)))
    return windows


def save(outcome: Outcome, history: History) -> Path:
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"{outcome.name}.json"
    path.write_text(json.dumps({"name": outcome.name, "problems": outcome.problems,
                                "extra": outcome.extra, "check": outcome.result.to_json()},
                               indent=2, default=str) + "\n")
    history.save(OUT_DIR / f"{outcome.name}.history.json")
    plot(history, outcome.result, OUT_DIR / f"{outcome.name}.png")
    return path
