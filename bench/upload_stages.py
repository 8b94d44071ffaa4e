"""Where one sequential upload's time goes: a span log per stage of POST /pks/add.

A real `meshkp serve` (defaults) runs in a child process with timing probes wrapped around the
functions each stage calls (nothing else changes); a client posts COUNT generated Ed25519
keys one after another over one keep-alive connection, as bench/upload_sequential.py does.
Every probe stamps `time.perf_counter_ns()`, which is CLOCK_MONOTONIC on Linux and so
comparable between the client and the node process: the client's send and receive bracket
the node's stamps. With one upload in flight at a time, each stamp belongs to the upload the
client is waiting for. The node writes its stamps to a file when it stops; the breakdown is
the median of each stage over the uploads (the first 20 are dropped as warm-up), and the
median of that over RUNS fresh nodes.

    python -m bench.upload_stages --count 300 --runs 3
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench.common import NO_REFUSALS, free_port, median, report, stop_process
from bench.upload_sequential import MAX_RUN_S, OneWriteConnection, bodies

WARMUP = 20
STAMPS_ENV = "MESHKP_BENCH_STAMPS"

# What happened between two consecutive stamps of one upload. The order of the stamps depends
# on the path the upload took (parsed in a thread before its commit job, or in the job on the
# writer thread), so each interval is named by the stamps around it.
LABELS: dict[tuple[str, str], str] = {
    ("client_send", "handler_in"): "request in: client send -> handler",
    ("handler_in", "service_in"): "form read + field decode",
    ("service_in", "parse_start"): "hop: loop -> parse thread",
    ("parse_start", "parse_end"): "parse + verify",
    ("parse_end", "parsed"): "hop: parse thread -> loop",
    ("parsed", "writer_got"): "hop: loop -> writer thread",
    ("service_in", "writer_got"): "hop: loop -> writer thread",
    ("writer_got", "gathered"): "group commit: gather / window wait",
    ("gathered", "parse_start"): "job start",
    ("gathered", "decided"): "decide (ingest, merge)",
    ("parse_end", "decided"): "decide (ingest, merge)",
    ("decided", "recorded"): "index terms + record writes",
    ("recorded", "merkled"): "Merkle leaf",
    ("merkled", "store_write_in"): "stage, end of job",
    ("store_write_in", "store_write_out"): "LevelDB write + fsync",
    ("store_write_out", "committed"): "hop: writer thread -> loop",
    ("committed", "published"): "observers (caches, push enqueue)",
    ("published", "handler_out"): "reply (report, metrics, log, body)",
    ("handler_out", "client_recv"): "reply out: handler -> client",
}
VERIFY = "  of which signature verify"
TOTAL = "total (client round trip)"

# -- the node side: probes --------------------------------------------------------------------

# (name, perf_counter_ns at the event, ns accumulated or 0 for an instant)
_stamps: list[tuple[str, int, int]] = []


def _stamp(name: str) -> None:
    _stamps.append((name, time.perf_counter_ns(), 0))


def _around(owner: Any, attr: str, before: str | None, after: str | None) -> None:
    """Wrap owner.attr (sync or async) to stamp `before` on entry and `after` on return."""
    original = getattr(owner, attr)
    if _is_async(original):
        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                _stamp(before)
            result = await original(*args, **kwargs)
            if after:
                _stamp(after)
            return result
        setattr(owner, attr, wrapped_async)
    else:
        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                _stamp(before)
            result = original(*args, **kwargs)
            if after:
                _stamp(after)
            return result
        setattr(owner, attr, wrapped)


def _accumulate(owner: Any, attr: str, name: str) -> None:
    """Wrap owner.attr to add its duration to the accumulated stamp '+name'."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            ended = time.perf_counter_ns()
            _stamps.append(("+" + name, ended, ended - began))
    setattr(owner, attr, wrapped)


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


def install_probes() -> None:
    """Wrap the functions of each stage (see LABELS) with stamps."""
    from meshkp.http import hkp
    from meshkp.keys import commit, merkle_index, parse, service
    from meshkp.openpgp import normalise
    from meshkp.store import executor, leveldb

    _around(hkp.HkpHandlers, "add", "handler_in", "handler_out")
    _around(service.KeyService, "add", "service_in", None)
    _around(parse, "parse_keytext", "parse_start", "parse_end")
    _around(parse.KeyParser, "parse", None, "parsed")
    _accumulate(normalise, "verify_binding", "verify")
    _around(executor.AsyncStore, "_gather", "writer_got", "gathered")
    original_commit = commit.Committer._commit

    def timed_commit(self: Any, store: Any, decide: Any, source: Any, sync: bool) -> Any:
        def timed_decide(*args: Any) -> Any:
            result = decide(*args)
            _stamp("decided")
            return result
        return original_commit(self, store, timed_decide, source, sync)
    commit.Committer._commit = timed_commit  # type: ignore[method-assign]
    _around(merkle_index.MerkleIndex, "attach", "recorded", "merkled")
    _around(leveldb.LevelDBStore, "write", "store_write_in", "store_write_out")
    _around(commit.Committer, "_publish", "committed", "published")
    atexit.register(_dump)


def _dump() -> None:
    path = os.environ.get(STAMPS_ENV)
    if path:
        Path(path).write_text(json.dumps(_stamps))


def serve_child(args: list[str]) -> None:
    """`meshkp serve ARGS` in this process, with the probes installed."""
    install_probes()
    from cli.main import main as cli_main
    cli_main.main(args=["serve", *args, *NO_REFUSALS], prog_name="meshkp")


# -- the client side --------------------------------------------------------------------------

def post_stamped(port: int, work: list[bytes]) -> list[tuple[int, int]]:
    """POST every body in turn over one keep-alive connection; (send, receive) ns of each."""
    connection = OneWriteConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    out = []
    try:
        for body in work:
            sent = time.perf_counter_ns()
            connection.request("POST", "/pks/add", body=body, headers=headers)
            reply = connection.getresponse()
            reply.read()
            out.append((sent, time.perf_counter_ns()))
            if reply.status != 200:
                raise RuntimeError(f"upload answered {reply.status}")
            if time.perf_counter() - started > MAX_RUN_S:
                raise RuntimeError(f"run exceeded {MAX_RUN_S} s")
    finally:
        connection.close()
    return out


def per_upload(stamps: list[tuple[str, int, int]],
               client: list[tuple[int, int]]) -> list[dict[str, int]]:
    """The stamps of each upload: those between its client send and receive (in time order)."""
    uploads = []
    position = 0
    for sent, received in client:
        marks: dict[str, int] = {"client_send": sent, "client_recv": received}
        while position < len(stamps) and stamps[position][1] < sent:
            position += 1  # between uploads (health checks)
        while position < len(stamps) and stamps[position][1] <= received:
            name, at, spent = stamps[position]
            if spent:
                marks[name] = marks.get(name, 0) + spent
            else:
                marks.setdefault(name, at)  # the first of a name in this upload
            position += 1
        uploads.append(marks)
    return uploads


def intervals(marks: dict[str, int]) -> dict[str, float]:
    """µs of each named interval of one upload (see LABELS), its verify time and its total."""
    instants = sorted((at, name) for name, at in marks.items() if not name.startswith("+"))
    out: dict[str, float] = {}
    for (began, first), (ended, second) in zip(instants, instants[1:], strict=False):
        label = LABELS.get((first, second), f"{first} -> {second}")
        out[label] = out.get(label, 0.0) + (ended - began) / 1000
    if "+verify" in marks:
        out[VERIFY] = marks["+verify"] / 1000
    out[TOTAL] = (marks["client_recv"] - marks["client_send"]) / 1000
    return out


def stage_medians(uploads: list[dict[str, int]]) -> dict[str, float]:
    """Median µs of each interval over the uploads (after the warm-up); 0 where absent."""
    measured = [intervals(marks) for marks in uploads[WARMUP:]]
    labels = list(dict.fromkeys(label for one in measured for label in one))
    return {label: median([one.get(label, 0.0) for one in measured]) for label in labels}


def one_run(count: int, index: int, root: Path) -> dict[str, float]:
    import subprocess

    from bench.common import wait_http
    work = bodies(count, seed=f"stages-{index}".encode())
    stamps_file = root / f"stamps-{index}.json"
    port = free_port()
    env = {**os.environ, STAMPS_ENV: str(stamps_file)}
    with open(root / f"node-{index}.log", "wb") as log_file:
        node = subprocess.Popen(
            [sys.executable, "-m", "bench.upload_stages", "--serve-child", "--",
             "--data-dir", str(root / f"node-{index}"), "--http-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/pks/health", 60)
        client = post_stamped(port, work)
    finally:
        stop_process(node)
    stamps = sorted((tuple(item) for item in json.loads(stamps_file.read_text())),
                    key=lambda item: item[1])
    return stage_medians(per_upload(stamps, client))


def run(count: int = 300, runs: int = 3) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="meshkp-upload-stages-"))
    results = [one_run(count, index, root) for index in range(runs)]
    rows = []
    summary: dict[str, float] = {}
    order = list(dict.fromkeys(label for result in results for label in result))
    order.sort(key=lambda label: label in (VERIFY, TOTAL))  # stable: those two last
    for stage in order:
        values = [r.get(stage, 0.0) for r in results]
        summary[stage] = median(values)
        rows.append([stage, *(f"{v:.0f}" for v in values), f"{summary[stage]:.0f}"])
    report("upload_stages",
           f"µs per stage of one sequential upload ({count} uploads, median; {runs} runs)",
           ["stage", *(f"run {i}" for i in range(runs)), "median"], rows,
           {"count": count, "runs": runs, "stages_us": summary, "per_run": results})
    return {"stages_us": summary}


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--count", type=int, default=300, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True)
@click.option("--serve-child", is_flag=True, hidden=True)
@click.argument("serve_args", nargs=-1, type=click.UNPROCESSED)
def main(count: int, runs: int, serve_child: bool, serve_args: tuple[str, ...]) -> None:
    """Per-stage time of sequential uploads to a probed `meshkp serve`."""
    if serve_child:
        globals()["serve_child"](list(serve_args))
        return
    run(count, runs)


if __name__ == "__main__":
    main()
