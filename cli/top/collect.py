"""Polling the cluster for `meshkp top`, in a thread so the view never waits on a slow node.

Each poll asks one node (the source) for /cluster/nodes and /cluster/load (every node's load
as the mesh brought it there: requests/s, p99, round trips, who reached whom), then every
alive member, in parallel, for its consensus, sync status and routing. A member whose load is
stale in the source's view (the other side of a partition) is asked for its own. Every request
has its own short timeout; a source that stops answering is replaced by another alive member.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cli.top.events import EventLog
from cli.top.model import LoadHistory, MemberRow, Snapshot, failover_order, http_url

# Seconds one request may take: a node slower than this is shown as unreachable this round.
REQUEST_TIMEOUT_S = 1.0
# Bytes of one reply read: /metrics of a busy node is ~100 kB; /cluster/nodes of 10,000 ~2 MB.
MAX_REPLY_BYTES = 8 * 1024 * 1024
# Members polled at once (each costs one thread for up to REQUEST_TIMEOUT_S per endpoint).
MAX_PARALLEL = 16


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


def apply_load(row: MemberRow, entry: object) -> bool:
    """Fill `row` from its /cluster/load entry; False when the entry holds no fresh load."""
    if not isinstance(entry, dict):
        return False
    row.rtt_ms = _num(entry.get("rtt_ms"))
    row.last_contact_s = _num(entry.get("last_contact_s"))
    load = entry.get("load")
    if not isinstance(load, dict) or entry.get("stale"):
        return False
    row.load_age_s = _num(entry.get("age_s"))
    row.sampled_at = _num(load.get("sampled_at"))
    client = load.get("client")
    if isinstance(client, dict):
        row.client_rate, row.client_p99 = _num(client.get("rate")), _num(client.get("p99_ms"))
    reach = load.get("reach")
    row.reach = frozenset(str(n) for n in reach) if isinstance(reach, dict) else None
    row.agent_percent = _int(load.get("agent_percent"))
    return True


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def sync_age(sync: dict[str, Any], wall: float) -> float | None:
    """Seconds since the member's last completed anti-entropy round (its /cluster/sync/status)."""
    peers = sync.get("peers")
    done = [p.get("last_sync_time") for p in (peers.values() if isinstance(peers, dict) else ())
            if isinstance(p, dict) and not str(p.get("last_result", "")).startswith("error")]
    times = [t for t in done if isinstance(t, (int, float))]
    return max(0.0, wall - max(times)) if times else None


def fill_member(row: MemberRow, own_load: bool = False) -> None:
    """Ask the member itself for its role, store and routing (row.error says what failed);
    with `own_load`, for its own view of its load too."""
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
    row.sync_age_s = sync_age(sync, time.time())
    try:  # older nodes, or a node without a control plane, have no routing: not an error
        routing = get_json(url, "/cluster/routing").get("nodes", {}).get(row.id, {})
        if isinstance(routing, dict):
            row.drain, row.read_only = bool(routing.get("drain")), bool(routing.get("read_only"))
            row.weight, row.zone = _int(routing.get("weight")), str(routing.get("zone") or "")
    except Unreachable:
        pass
    if own_load:
        try:
            nodes = get_json(url, "/cluster/load").get("nodes", {})
            rtt, contact = row.rtt_ms, row.last_contact_s  # the source's view of it stays
            apply_load(row, nodes.get(row.id) if isinstance(nodes, dict) else None)
            row.rtt_ms, row.last_contact_s = rtt, contact
        except Unreachable:
            pass


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
        self.history = LoadHistory()
        self.events = EventLog()
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
                               rates=m.rates, p99s=m.p99s) for m in self._known]
            return Snapshot(self.source, self.start_url, members=stale, polls=self._polls,
                            error="no member answers: " + "; ".join(errors)[:300],
                            events=list(self.events.events))
        rows = members_of(body)
        try:
            loads = get_json(self.source, "/cluster/load").get("nodes", {})
        except Unreachable:
            loads = {}
        fresh = {r.id: apply_load(r, loads.get(r.id) if isinstance(loads, dict) else None)
                 for r in rows}
        polled = [r for r in rows if r.http and r.status in ("alive", "suspect")]
        list(self._pool.map(lambda r: fill_member(r, own_load=not fresh[r.id]), polled))
        for row in rows:
            row.rates, row.p99s = self.history.update(row.id, row.sampled_at, row.client_rate,
                                                      row.client_p99)
            if row.status in ("dead", "left") and not row.error:
                row.error = row.status
        self._known = rows
        events = self.events.update(rows, time.time())
        return Snapshot(self.source, self.start_url, self_id=str(body.get("self", "")),
                        members=rows, polls=self._polls, events=events)

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
