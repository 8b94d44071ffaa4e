"""Where a policy commit's time goes: CPU per change on each of 5 nodes, `python -m bench.control_cpu`.

Five `meshkp serve --mesh` processes on loopback, as bench/control_latency.py. The CPU time
(user + system, all threads, from /proc/PID/stat) of every node is read over an idle interval
(heartbeats only) and over N changes sent one at a time to the leader; the idle rate is taken
off, which leaves the CPU one change costs on the leader and on each follower. On a machine
with fewer cores than nodes, the sum over the nodes bounds the latency from below once it
exceeds the wall time a change takes divided by the cores: then the commit latency is the
nodes' CPU, queued on the cores, not a wait inside meshkp.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import click

from bench.common import report
from bench.control_latency import _timed_changes
from tests.integration.control_mesh import ControlMesh

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def _cpu(mesh: ControlMesh) -> dict[str, float]:
    return {node: _cpu_seconds(server.proc.pid) for node, server in mesh.running().items()}


def run(changes: int, idle_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="meshkp-bench-control-cpu-") as tmp:
        mesh = ControlMesh(Path(tmp))
        try:
            leader = mesh.form()
            _timed_changes(mesh.servers[leader], 20, 0)  # warm up
            before, began = _cpu(mesh), time.perf_counter()
            time.sleep(idle_s)
            idle_cpu, idle_wall = _cpu(mesh), time.perf_counter() - began
            began = time.perf_counter()
            times = _timed_changes(mesh.servers[leader], changes, 100)
            busy_cpu, busy_wall = _cpu(mesh), time.perf_counter() - began
        finally:
            mesh.close()
    rows = []
    per_change: dict[str, float] = {}
    for node in sorted(before):
        idle_rate = (idle_cpu[node] - before[node]) / idle_wall
        per = ((busy_cpu[node] - idle_cpu[node]) - idle_rate * busy_wall) / changes
        per_change[node] = per
        rows.append((f"{node}{' (leader)' if node == leader else ''}", f"{per * 1e3:.2f}",
                     f"{idle_rate * 100:.1f} %"))
    total = sum(per_change.values())
    wall = statistics.median(times)
    rows.append(("all nodes", f"{total * 1e3:.2f}", ""))
    rows.append(("wall time of one change (median)", f"{wall * 1e3:.2f}", ""))
    cores = os.cpu_count() or 1
    rows.append((f"all nodes' CPU / {cores} cores", f"{total / cores * 1e3:.2f}", ""))
    data: dict[str, object] = {"changes": changes, "leader": leader, "cpu_ms_per_change": {
        n: v * 1e3 for n, v in per_change.items()}, "cpu_ms_all": total * 1e3, "wall_ms_p50": wall * 1e3,
        "cores": cores, "loadavg": os.getloadavg()}
    report("control_cpu", "CPU per policy change, 5 nodes on loopback (ms)",
           ("node", "CPU ms per change", "idle CPU"), rows, data)
    return data


@click.command()
@click.option("--changes", type=int, default=300, show_default=True)
@click.option("--idle", "idle_s", type=float, default=5.0, show_default=True, help="Idle seconds measured.")
def main(changes: int, idle_s: float) -> None:
    """Measure the CPU one policy change costs on each node."""
    run(changes, idle_s)


if __name__ == "__main__":
    main()
