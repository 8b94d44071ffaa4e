"""Polling the cluster for `meshkp top`, in a thread so the view never waits on a slow node.

Each poll asks one node (the source) for /cluster/nodes, then every alive member, in
parallel, for its consensus, sync status, routing and /metrics. Every request has its own
short timeout; a source that stops answering is replaced by another alive member.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cli.top.model import MemberRow, RateHistory, Snapshot, failover_order, http_url

# Seconds one request may take: a node slower than this is shown as unreachable this round.
REQUEST_TIMEOUT_S = 1.0
# Bytes of one reply read: /metrics of a busy node is ~100 kB; /cluster/nodes of 10,000 ~2 MB.
MAX_REPLY_BYTES = 8 * 1024 * 1024
# Members polled at once (each costs one thread for up to REQUEST_TIMEOUT_S per endpoint).
MAX_PARALLEL = 16
# Endpoints top itself polls: not counted as the node's traffic.
OWN_ENDPOINTS = ("/cluster", "/metrics")


class Unreachable(Exception):
    """A node did not answer, or answered something other than the JSON we expect."""


def get(url: str, path: str, timeout: float = REQUEST_TIMEOUT_S) -> bytes:
    """The body of a 200 reply to GET url+path; Unreachable otherwise."""
    request = urllib.request.Request(url.rstrip("/") + path, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read(MAX_REPLY_BYTES))
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{path} answered {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{path}: {reason}") from None


def get_json(url: str, path: str) -> dict[str, Any]:
    try:
        body = json.loads(get(url, path))
    except ValueError:
        raise Unreachable(f"{path} did not answer JSON") from None
    if not isinstance(body, dict):
        raise Unreachable(f"{path} did not answer a JSON object")
    return body


def client_requests(metrics_text: str) -> float:
    """Total HTTP requests a node answered, except top's own polling endpoints."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "meshkp_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and \
                    not sample.labels.get("endpoint", "").startswith(OWN_ENDPOINTS):
                total += sample.value
    return total


def fill_member(row: MemberRow) -> None:
    """Ask the member itself for its role, store and traffic (row.error says what failed)."""
    url = http_url(row.http)
    try:
        sync = get_json(url, "/cluster/sync/status")
    except Unreachable as exc:
        row.error = str(exc)
        return
    row.reachable = True
    try:  # a node without a control plane has no consensus: its role shows as "?"
        consensus = get_json(url, "/cluster/consensus")
    except Unreachable:
        consensus = {}
    row.role = str(consensus.get("role") or "?")
    row.term = _int(consensus.get("term"))
    row.leader = consensus.get("leader") or None
    row.policy_version = _int(consensus.get("policy_version"))
    row.keys = _int(sync.get("keys"))
    row.merkle_root = sync.get("merkle_root") or None
    row.conflicts = _int(sync.get("conflicts"))
    push = sync.get("push")
    row.pending = _int(push.get("pending")) if isinstance(push, dict) else None
    try:  # older nodes, or a node without a control plane, have no routing: not an error
        routing = get_json(url, "/cluster/routing").get("nodes", {}).get(row.id, {})
        if isinstance(routing, dict):
            row.drain, row.read_only = bool(routing.get("drain")), bool(routing.get("read_only"))
            row.weight, row.zone = _int(routing.get("weight")), str(routing.get("zone") or "")
    except Unreachable:
        pass
    try:
        row.requests_total = client_requests(get(url, "/metrics").decode("utf-8", "replace"))
    except (Unreachable, ValueError):
        row.requests_total = None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def members_of(body: dict[str, Any]) -> list[MemberRow]:
    rows = []
    for node in body.get("nodes", []):
        if not isinstance(node, dict) or "id" not in node:
            continue
        meta = node.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        rows.append(MemberRow(id=str(node["id"]), status=str(node.get("status", "?")),
                              incarnation=_int(node.get("incarnation")),
                              http=str(meta.get("http") or node.get("http") or "")))
    return rows


class Collector:
    """Polls the cluster; `poll()` is one synchronous round (tests call it directly)."""

    def __init__(self, start_url: str) -> None:
        self.start_url = start_url.rstrip("/")
        self.source = self.start_url
        self.history = RateHistory()
        self._known: list[MemberRow] = []
        self._polls = 0
        self._pool = ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="meshkp-top")

    def poll(self) -> Snapshot:
        self._polls += 1
        errors = []
        for url in failover_order(self.start_url, self.source, self._known):
            try:
                body = get_json(url, "/cluster/nodes")
            except Unreachable as exc:
                errors.append(f"{url}: {exc}")
                continue
            self.source = url
            break
        else:
            # Keep the last member list, every row now unknown: the view shows what it knew.
            stale = [MemberRow(id=m.id, status=m.status, http=m.http, error="no answer",
                               rates=m.rates) for m in self._known]
            return Snapshot(self.source, self.start_url, members=stale, polls=self._polls,
                            error="no member answers: " + "; ".join(errors)[:300])
        rows = members_of(body)
        polled = [r for r in rows if r.http and r.status in ("alive", "suspect")]
        list(self._pool.map(fill_member, polled))
        now = time.monotonic()
        for row in rows:
            row.rates = self.history.update(row.id, now, row.requests_total)
            if row.status in ("dead", "left") and not row.error:
                row.error = row.status
        self._known = rows
        return Snapshot(self.source, self.start_url, self_id=str(body.get("self", "")),
                        members=rows, polls=self._polls)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Poller(threading.Thread):
    """Runs Collector.poll every `interval` seconds; `latest` is the newest Snapshot."""

    def __init__(self, collector: Collector, interval: float) -> None:
        super().__init__(name="meshkp-top-poller", daemon=True)
        self.collector = collector
        self.interval = interval
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None

    @property
    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def run(self) -> None:
        while not self._stop_event.is_set():
            began = time.monotonic()
            try:
                snapshot = self.collector.poll()
            except Exception as exc:  # noqa: BLE001  (a bug here must not kill the view silently)
                snapshot = Snapshot(self.collector.source, self.collector.start_url,
                                    error=f"poll failed: {type(exc).__name__}: {exc}")
            with self._lock:
                self._latest = snapshot
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.collector.close()
