"""Fixtures of the chaos tier: clusters of real processes (on loopback or in namespaces) that
are always torn down, and the reports every run prints at the end of the session.

Run with `make chaos` (= `pytest -q -m chaos chaos/`); the default suite deselects the
`chaos` marker, so `pytest chaos/` alone collects these tests but runs none.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.cluster import ChaosCluster
from chaos.invariants import OUT_DIR, RunReport
from chaos.netns import Topology, unavailable_reason

# Gossip timers of the runs: `test` (probe 0.5 s) keeps every run within a few minutes on 2
# shared cores; MESHKP_CHAOS_PROFILE=lan measures memberlist's LAN timers instead.
PROFILE = os.environ.get("MESHKP_CHAOS_PROFILE", "test")
# Seed of the runs' random choices (victims, targets, delays); set it to replay or vary a run.
SEED = int(os.environ.get("MESHKP_CHAOS_SEED", "20240601"))

_REPORTS: list[RunReport] = []

ClusterFactory = Callable[..., ChaosCluster]


@pytest.fixture
def seed() -> int:
    return SEED


@pytest.fixture
def launch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterFactory]:
    """launch(n, netns=False, **kw): a started ChaosCluster, stopped (and its namespaces
    deleted) at teardown whatever happened; the node logs are kept in chaos/out/logs/TEST/."""
    made: list[tuple[ChaosCluster | None, Topology | None]] = []

    def factory(n: int, netns: bool = False, **kwargs: object) -> ChaosCluster:
        topology = None
        if netns:
            reason = unavailable_reason()
            if reason is not None:
                pytest.skip(reason)
            topology = Topology(n)
            made.append((None, topology))
            try:
                topology.create()
            except RuntimeError as exc:  # e.g. root without CAP_SYS_ADMIN, no nf_tables
                pytest.skip(f"cannot build the test network here: {exc}")
        kwargs.setdefault("profile", PROFILE)
        cluster = ChaosCluster.launch(tmp_path / f"cluster{len(made)}", n, topology=topology,
                                      **kwargs)  # type: ignore[arg-type]
        made.append((cluster, None))
        return cluster

    try:
        yield factory
    finally:
        for cluster, _ in reversed(made):
            if cluster is not None:
                cluster.close()
        for _, topology in reversed(made):
            if topology is not None:
                topology.close()
        _keep_logs(tmp_path, OUT_DIR / "logs" / request.node.name)


def _keep_logs(source: Path, target: Path) -> None:
    """Copy the server logs out of pytest's temporary directory (which is soon recycled)."""
    shutil.rmtree(target, ignore_errors=True)
    for log in source.glob("cluster*/*.log"):
        (target / log.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(log, target / log.parent.name / log.name)


@pytest.fixture
def report() -> Callable[[str, int], RunReport]:
    """report(name, nodes): a RunReport printed in the session summary."""

    def make(name: str, nodes: int) -> RunReport:
        run = RunReport(name, nodes)
        run.extra["seed"] = SEED
        _REPORTS.append(run)
        return run

    return make


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORTS:
        return
    terminalreporter.section("chaos reports")
    for run in _REPORTS:
        terminalreporter.write_line(run.line())
        for problem in run.problems():
            terminalreporter.write_line(f"  PROBLEM: {problem}")
