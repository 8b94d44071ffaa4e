"""Concurrent clients of a chaos run that record every operation into a History.

- `Writers`: several threads upload new keys to random target nodes with rotating consistency
  levels, and now and then delete an acknowledged key through the admin API. After each
  acknowledged delete they re-upload the key to the node that deleted it, which holds the
  tombstone and must refuse it (4xx, checked: `reupload` ops), and to another node (anything
  goes there, but the key must never be served again). After a quorum ack every node is asked
  (`quorum-check`); after an `all` ack a random node is read, which must serve it.
- `VisibilityTracker`: for a sample of acknowledged writes, polls every node until each serves
  the key: the time from the ack to visible everywhere.
- `final_reads`: after the heal, every sent key on every node, bodies checked (the 200 must be
  the key asked for; a deleted key must be a 404).

Every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode

from chaos.checker import ABSENT, PRESENT, WRONG
from chaos.cluster import OBSERVE_TIMEOUT_S, ChaosCluster, served_key
from chaos.history import FAIL, INFO, OK, History, Op

# Bound of one client request: longer than the 5 s consistency timeout, so a quorum write that
# is merely slow still gets its answer (503 or 200) rather than being called uncertain.
REQUEST_TIMEOUT_S = 8.0
MAX_OPS_PER_WRITER = 2000
VISIBILITY_SAMPLE = 4  # one acknowledged write in this many is tracked to visible-everywhere
VISIBILITY_PENDING_MAX = 32
VISIBILITY_GIVE_UP_S = 120.0


def read_key(cluster: ChaosCluster, i: int, fpr: str, timeout: float = OBSERVE_TIMEOUT_S) -> str | None:
    """present / absent / wrong for node i's answer to op=get of fpr; None if no answer."""
    node = cluster.nodes[i]
    if node is None or i in cluster.paused:
        return None
    try:
        reply = node.request("GET", "/pks/lookup?" + urlencode({"op": "get", "search": "0x" + fpr}),
                             timeout=timeout)
    except OSError:
        return None
    if reply.status == 404:
        return ABSENT
    if reply.status != 200:
        return None
    return PRESENT if served_key(reply.body) == fpr else WRONG


class Writers:
    """`count` writer threads; `targets()` says which nodes each may send to right now."""

    def __init__(self, cluster: ChaosCluster, history: History, keys: Iterator[tuple[str, str]],
                 targets: Callable[[int], list[int]], count: int = 3,
                 levels: tuple[str, ...] = ("one", "quorum", "one", "all"), delete_every: int = 12,
                 interval_s: float = 0.05, seed: int = 1,
                 on_ack: Callable[[str, float], None] | None = None,
                 max_ops: int = MAX_OPS_PER_WRITER) -> None:
        self.cluster, self.history, self.targets = cluster, history, targets
        self.levels, self.delete_every, self.interval_s = levels, delete_every, interval_s
        self.on_ack = on_ack
        self.max_ops = max_ops
        self._keys, self._keys_lock = keys, threading.Lock()
        self.keytext: dict[str, str] = {}
        self.acked: list[str] = []
        self.stopping = threading.Event()
        # Cleared by pause(): writers wait between operations (a quiet mesh for a convergence
        # measurement that is not a moving target); set again by resume().
        self.flowing = threading.Event()
        self.flowing.set()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(w, random.Random(seed * 100 + w)),
                                         name=f"chaos-writer-{w}", daemon=True) for w in range(count)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        self.flowing.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S * 4)

    def pause(self) -> None:
        """No new operation until resume() (one in flight completes)."""
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def _next_key(self) -> tuple[str, str]:
        with self._keys_lock:
            fpr, text = next(self._keys)
            self.keytext[fpr] = text
            return fpr, text

    def _run(self, w: int, rng: random.Random) -> None:
        try:
            for n in range(self.max_ops):
                while not self.flowing.wait(1.0) and not self.stopping.is_set():
                    pass  # paused: bounded by the runner's resume() or stop()
                if self.stopping.is_set():
                    return
                choices = [i for i in self.targets(w) if self.cluster.nodes[i] is not None]
                if not choices:
                    self.stopping.wait(0.1)
                    continue
                target = rng.choice(choices)
                if self.delete_every and n % self.delete_every == self.delete_every - 1:
                    self._delete(f"w{w}", target, rng)
                else:
                    self._add(f"w{w}", target, self.levels[(n + w) % len(self.levels)], rng)
                self.stopping.wait(self.interval_s)
        except BaseException as exc:  # surfaced by the runner
            self.errors.append(exc)

    def _post(self, target: int, keytext: str, level: str) -> tuple[int | None, dict[str, str], str]:
        node = self.cluster.nodes[target]
        if node is None:
            return None, {}, ""
        body = ("keytext=" + quote(keytext, safe="")).encode()
        try:
            reply = node.request("POST", "/pks/add", body=body, timeout=REQUEST_TIMEOUT_S,
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Consistency": level})
        except OSError:
            return None, {}, ""
        return reply.status, dict(reply.headers), reply.text

    def _add(self, process: str, target: int, level: str, rng: random.Random) -> None:
        fpr, keytext = self._next_key()
        op = self.history.invoke(process, target, "add", fpr, level)
        status, headers, _ = self._post(target, keytext, level)
        if status == 200:
            self.history.complete(op, OK, status)
            if self.on_ack is not None:
                self.on_ack(fpr, self.history.now())
            if level == "quorum":
                self._quorum_check(process, fpr, headers.get("x-consistency-acks", ""))
            elif level == "all":
                self._read(process, rng.randrange(self.cluster.n), fpr)
            # Only now may another writer delete it: a delete racing the check above would
            # read as a quorum ack held by too few nodes.
            with self._keys_lock:
                self.acked.append(fpr)
        elif status == 503 and "x-consistency-acks" in headers:
            # Stored on the node before it waited; it keeps spreading: it must not be lost.
            self.history.complete(op, OK, status, "stored-503")
        elif status == 507:  # a full disk: nothing was stored, definitely
            self.history.complete(op, FAIL, status)
        elif status is None or status >= 500:
            self.history.complete(op, INFO, status)
        else:
            self.history.complete(op, FAIL, status)

    def _read(self, process: str, i: int, fpr: str) -> None:
        op = self.history.invoke(process, i, "read", fpr)
        value = read_key(self.cluster, i, fpr)
        self.history.complete(op, INFO if value is None else OK, None, value or "")

    def _quorum_check(self, process: str, fpr: str, acks: str) -> None:
        acked, _, needed = acks.partition("/")
        op = self.history.invoke(process, -1, "quorum-check", fpr)
        if not (acked.isdigit() and needed.isdigit()) or int(acked) < int(needed):
            self.history.complete(op, OK, None, "short")
            return
        answers = [read_key(self.cluster, i, fpr) for i in range(self.cluster.n)]
        holding = sum(1 for a in answers if a != ABSENT)  # serving, or not answering (may hold it)
        self.history.complete(op, OK, holding, "held" if holding >= int(needed) else "short")

    def _delete(self, process: str, target: int, rng: random.Random) -> None:
        with self._keys_lock:
            if not self.acked:
                return
            fpr = self.acked.pop(rng.randrange(len(self.acked)))
        node = self.cluster.nodes[target]
        if node is None:
            return
        op = self.history.invoke(process, target, "delete", fpr)
        try:
            reply = node.request("DELETE", f"/cluster/keys/{fpr}?reason=chaos&actor=chaos",
                                 headers={"Authorization": f"Bearer {self.cluster.delete_token(target)}"},
                                 timeout=REQUEST_TIMEOUT_S)
        except OSError:
            self.history.complete(op, INFO)
            return
        if reply.status != 200 or not json.loads(reply.body).get("deleted"):
            self.history.complete(op, FAIL if reply.status < 500 else INFO, reply.status)
            return
        self.history.complete(op, OK, 200)
        self._reupload(target, fpr, checked=True)
        other = [i for i in range(self.cluster.n) if i != target and self.cluster.nodes[i] is not None]
        if other:
            self._reupload(rng.choice(other), fpr, checked=False)

    def _reupload(self, target: int, fpr: str, checked: bool) -> None:
        op = self.history.invoke("reupload", target, "add", fpr, "one")
        status, _, text = self._post(target, self.keytext[fpr], "one")
        if checked and status == 200 and ("1 added" in text or "1 updated" in text):
            self.history.complete(op, OK, status, "reupload-taken")  # the tombstone holder took it
        else:
            self.history.complete(op, OK if status == 200 else FAIL, status)


class VisibilityTracker:
    """Polls every node for a sample of acked keys; `visible_at[fpr]` = history time seen on all."""

    def __init__(self, cluster: ChaosCluster, history: History) -> None:
        self.cluster, self.history = cluster, history
        self.visible_at: dict[str, float] = {}
        self._pending: dict[str, tuple[float, set[int]]] = {}
        self._lock = threading.Lock()
        self._count = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaos-visibility", daemon=True)

    def acked(self, fpr: str, at: float) -> None:
        with self._lock:
            self._count += 1
            if self._count % VISIBILITY_SAMPLE == 0 and len(self._pending) < VISIBILITY_PENDING_MAX:
                self._pending[fpr] = (at, set())

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(OBSERVE_TIMEOUT_S * self.cluster.n * 2)

    def drain(self, timeout: float) -> None:
        """Keep polling after the writers stopped, until every sample is seen or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.2)

    def _run(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                pending = list(self._pending.items())
            for fpr, (at, seen) in pending:
                for i in range(self.cluster.n):
                    if i not in seen and read_key(self.cluster, i, fpr, timeout=2.0) == PRESENT:
                        seen.add(i)
                now = self.history.now()
                with self._lock:
                    if len(seen) == self.cluster.n:
                        self.visible_at[fpr] = now
                        self._pending.pop(fpr, None)
                    elif now - at > VISIBILITY_GIVE_UP_S:
                        self._pending.pop(fpr, None)
            self.stopping.wait(0.05)


def final_reads(cluster: ChaosCluster, keys: list[str]) -> dict[int, dict[str, str]]:
    """node -> fingerprint -> present/absent/wrong, over kept-alive connections."""
    final: dict[int, dict[str, str]] = {}
    for i in range(cluster.n):
        answers: dict[str, str] = {}
        for fpr, status, body in cluster[i].get_keys(keys):
            if status == 404:
                answers[fpr] = ABSENT
            elif status == 200:
                answers[fpr] = PRESENT if served_key(body) == fpr else WRONG
        final[i] = answers
    return final


def reupload_problems(history: History) -> list[str]:
    """Re-uploads the tombstone's own node took as an add or update (it must refuse them)."""
    ops: list[Op] = history.snapshot()[0]
    return [f"{o.key} re-uploaded to n{o.node} after its delete there: {o.status}"
            for o in ops if o.process == "reupload" and o.value == "reupload-taken"]
