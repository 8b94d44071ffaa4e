"""A PNG timeline of one chaos run: writes acknowledged / refused / uncertain per second, the
faults as shaded spans, and the convergence after each heal. matplotlib is a chaos-only extra
(`pip install -e '.[chaos]'`), never a runtime dependency: without it no PNG is written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from chaos.checker import CheckResult
from chaos.history import FAIL, INFO, OK, History


def plot(history: History, result: CheckResult, path: Path) -> Path | None:
    """Write the timeline to `path`; None (and nothing written) when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ops, events = history.snapshot()
    per_second: dict[str, Counter[int]] = {OK: Counter(), FAIL: Counter(), INFO: Counter()}
    for o in ops:
        if o.kind == "add" and o.process != "reupload":
            per_second[o.result][int(o.invoke)] += 1
    end = int(history.now()) + 1
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for result_name, color in ((OK, "tab:green"), (FAIL, "tab:orange"), (INFO, "tab:red")):
        ax.plot(range(end), [per_second[result_name][s] for s in range(end)], color=color,
                label=f"writes {result_name}/s")
    starts: dict[str, float] = {}
    for e in events:
        if e.phase == "start":
            starts[e.fault] = e.at
        elif e.fault in starts:
            ax.axvspan(starts.pop(e.fault), e.at, color="grey", alpha=0.25)
            ax.text(e.at, ax.get_ylim()[1] * 0.9, e.fault, fontsize=7, ha="right")
    for c in result.convergence:
        ax.set_title(ax.get_title() + f" {c.get('after')}: members {c.get('members_s')} s, "
                     f"roots {c.get('roots_s')} s;", fontsize=8)
    ax.set_xlabel("seconds")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
