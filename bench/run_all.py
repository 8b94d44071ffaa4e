"""`make bench`: run every benchmark present, each printing a table and writing bench/out/*.json.

A benchmark that fails is reported and the others still run; the exit status is non-zero
if any failed. `--only NAME` (repeatable) runs a subset.
Run: python -m bench.run_all [--only load_vs_gpg ...] [--quick]
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import time
import traceback
from collections.abc import Callable

import click

from bench import common
from bench.common import OUT_DIR, console

# (name, module, keyword arguments of its run() for --quick). Modules owned by other parts of
# the project are run when they exist.
BENCHMARKS: list[tuple[str, str, dict[str, object]]] = [
    ("load_vs_gpg", "bench.load_vs_gpg", {"runs": 1}),
    ("http_read", "bench.http_read", {"runs": 1, "seconds": 2.0}),
    ("http_read_wrk", "bench.http_read_wrk", {"pairs": 1, "seconds": 2.0}),
    ("http_read_cpu", "bench.http_read_cpu", {"requests": 2_000, "runs": 1}),
    ("load_generated", "bench.load_generated", {"count": 5_000, "runs": 1, "gpg_keys": 1_000}),
    ("store_bench", "bench.store_bench", {"count": 10_000, "runs": 1}),
    ("merkle_diff", "bench.merkle_diff", {}),
    ("swim_sim", "bench.swim_sim", {}),
    ("frame_auth", "bench.frame_auth", {"quick": True}),
    ("record_merge", "bench.record_merge", {"runs": 1}),
    ("verify_selfsigs", "bench.verify_selfsigs", {}),
    ("replication_propagation", "bench.replication_propagation", {}),
    ("replication_antientropy", "bench.replication_antientropy", {"keys": 5_000}),
    ("replication_bootstrap", "bench.replication_bootstrap", {"keys": 5_000}),
    ("replication_bootstrap_keyrings", "bench.replication_bootstrap_keyrings", {"runs": 1}),
    ("replication_throughput", "bench.replication_throughput", {"count": 200}),
    ("replication_write_latency", "bench.replication_write_latency", {"sizes": [3], "writes": 10}),
    ("control_commit", "bench.control_commit", {}),
    ("control_latency", "bench.control_latency", {"changes": 50, "failovers": 1}),
    ("control_cpu", "bench.control_cpu", {"changes": 50, "idle_s": 2.0}),
    ("control_churn", "bench.control_churn", {"rounds": 3, "windows": 4, "keys_per_client": 2000}),
    ("write_path_cpu", "bench.write_path_cpu", {"keys": 100, "runs": 1}),
    ("upload_sequential", "bench.upload_sequential",
     {"count": 100, "runs": 1, "concurrent_count": 200}),
    ("upload_stages", "bench.upload_stages", {"count": 100, "runs": 1}),
    ("compression_ratio", "bench.compression_ratio", {"runs": 1}),
    ("backup_restore", "bench.backup_restore", {"keys": 2_000, "runs": 1}),
    ("upload_writer_cpu", "bench.upload_writer_cpu", {"count": 100, "runs": 1}),
    ("scaling_write_cpu", "bench.scaling_write_cpu", {}),
    ("scaling_sync_bytes", "bench.scaling_sync_bytes", {}),
]


def _entry(module: object, quick_kwargs: dict[str, object], quick: bool) -> Callable[[], object]:
    """With --quick, run(**small sizes) when the module has run(); else its main() as from a shell."""
    runner = getattr(module, "run", None)
    if quick and callable(runner):
        accepted = inspect.signature(runner).parameters
        kwargs = {k: v for k, v in quick_kwargs.items() if k in accepted}
        return lambda: runner(**kwargs)
    main: Callable[..., object] = module.main  # type: ignore[attr-defined]
    # click commands parse sys.argv; give them none and keep them from exiting the process.
    if hasattr(main, "main") and hasattr(main, "params"):
        return lambda: main.main(args=[], standalone_mode=False)
    if "argv" in inspect.signature(main).parameters:
        return lambda: main([])
    return main


@click.command()
@click.option("--only", multiple=True, help="Run only these benchmarks (by name).")
@click.option("--quick", is_flag=True, help="Small sizes and one run: a smoke test, not figures.")
def main(only: tuple[str, ...], quick: bool) -> None:
    """Run the benchmarks and write a combined summary to bench/out/summary.json."""
    outcomes: dict[str, dict[str, object]] = {}
    if quick:
        common.RESULT_SUFFIX = ".quick"
    for name, module_name, quick_kwargs in BENCHMARKS:
        if only and name not in only:
            continue
        if importlib.util.find_spec(module_name) is None:
            console.print(f"[dim]{name}: not present, skipped[/dim]")
            continue
        console.rule(name)
        began = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            _entry(module, quick_kwargs, quick)()
            outcomes[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            outcomes[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        outcomes[name]["seconds"] = round(time.perf_counter() - began, 1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"summary{common.RESULT_SUFFIX}.json").write_text(json.dumps(outcomes, indent=2) + "\n")
    failed = [name for name, outcome in outcomes.items() if not outcome["ok"]]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
