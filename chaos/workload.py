"""The write stream of a chaos run, and the ledger of what the mesh acknowledged.

A write counts as acknowledged only when /pks/add answered 200 (with x-consistency=quorum,
that reply came after a majority merged it). A 503 carrying X-Consistency-Acks is a quorum
not reached in time: the write was stored durably on the node first and "keeps spreading"
(docs/replication.md), so it must end up everywhere too. A request that got no answer (node
killed, paused, timed out) is *uncertain*: nothing is asserted about it. Acknowledged
deletes are followed by an attempt to upload the key again on another node; whatever that
answers, the key must never be served again.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from chaos.cluster import ChaosCluster
from tests.integration.replication_mesh import armored, fingerprint

# A write stream never runs longer than this, whatever the run asks (2 shared cores).
MAX_WRITES = 1500
# Bound of one client request: longer than the 5 s consistency timeout, so a quorum write
# that is merely slow still gets its answer (503 or 200) rather than being called uncertain.
REQUEST_TIMEOUT_S = 8.0


def key_stream(seed: bytes) -> Iterator[tuple[str, str]]:
    """(fingerprint, armored key) for index 0, 1, 2... of a deterministic sequence."""
    index = 0
    while True:
        yield fingerprint(index, seed), armored(index, seed, with_subkey=False)
        index += 1


@dataclass
class Ledger:
    """What was sent and what the mesh acknowledged; thread-safe."""

    attempted: int = 0
    acked: dict[str, str] = field(default_factory=dict)  # fingerprint -> consistency level
    stored_on_timeout: set[str] = field(default_factory=set)  # 503 + X-Consistency-Acks
    uncertain: set[str] = field(default_factory=set)
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status -> count
    deleted: set[str] = field(default_factory=set)
    delete_uncertain: set[str] = field(default_factory=set)
    reuploads: Counter[int] = field(default_factory=Counter)  # status of re-uploads after delete
    quorum_short: list[str] = field(default_factory=list)
    keytext: dict[str, str] = field(default_factory=dict)  # every key sent, for re-uploads
    lock: threading.Lock = field(default_factory=threading.Lock)

    def must_be_present(self) -> list[str]:
        """Acknowledged (or stored-then-503) adds that no delete may have removed."""
        with self.lock:
            stored = set(self.acked) | self.stored_on_timeout
            return sorted(stored - self.deleted - self.delete_uncertain)

    def summary(self) -> dict[str, object]:
        with self.lock:
            levels = Counter(self.acked.values())
            return {
                "writes_attempted": self.attempted,
                "writes_acked": len(self.acked),
                "acked_by_level": dict(levels),
                "writes_stored_503": len(self.stored_on_timeout),
                "writes_uncertain": len(self.uncertain),
                "writes_refused": dict(self.refused),
                "deletes_acked": len(self.deleted),
                "reuploads_after_delete": dict(self.reuploads),
            }


class Writer:
    """Uploads new keys to random nodes, and now and then deletes an acknowledged key.

    `targets()` says which nodes to send to right now (e.g. one side of a partition); killed
    nodes are skipped, paused ones are not (their requests time out and are uncertain).
    Consistency levels cycle through `levels`. With `check_quorum`, each quorum ack is checked
    at once: at least `needed` nodes serve the key or do not answer (a killed node may hold it).
    """

    def __init__(
        self, cluster: ChaosCluster, ledger: Ledger, keys: Iterator[tuple[str, str]],
        targets: Callable[[], list[int]], levels: tuple[str, ...] = ("one", "quorum"),
        delete_every: int = 0, max_writes: int = 400, interval_s: float = 0.02,
        check_quorum: bool = True, seed: int = 1,
    ) -> None:
        self.thread = threading.Thread(target=self._run, name="chaos-writer", daemon=True)
        self.cluster, self.ledger, self.keys, self.targets = cluster, ledger, keys, targets
        self.levels, self.delete_every = levels, delete_every
        self.max_writes = min(max_writes, MAX_WRITES)
        self.interval_s, self.check_quorum = interval_s, check_quorum
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(REQUEST_TIMEOUT_S * 3)

    def _run(self) -> None:
        try:
            for n in range(self.max_writes):
                if self.stopping.is_set():
                    return
                target = self._pick()
                if target is None:
                    self.stopping.wait(0.1)
                    continue
                if self.delete_every and n % self.delete_every == self.delete_every - 1:
                    self._delete(target)
                else:
                    self._add(target, self.levels[n % len(self.levels)])
                self.stopping.wait(self.interval_s)
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def _pick(self, avoid: int | None = None) -> int | None:
        choices = [i for i in self.targets() if self.cluster.nodes[i] is not None and i != avoid]
        return self.rng.choice(choices) if choices else None

    def _post(self, target: int, keytext: str, level: str) -> tuple[int | None, dict[str, str]]:
        node = self.cluster.nodes[target]
        if node is None:
            return None, {}
        body = ("keytext=" + quote(keytext, safe="")).encode()
        try:
            reply = node.request(
                "POST", "/pks/add", body=body, timeout=REQUEST_TIMEOUT_S,
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "X-Consistency": level},
            )
        except OSError:
            return None, {}
        return reply.status, dict(reply.headers)

    def _add(self, target: int, level: str) -> None:
        fpr, keytext = next(self.keys)
        with self.ledger.lock:
            self.ledger.attempted += 1
            self.ledger.keytext[fpr] = keytext
        status, headers = self._post(target, keytext, level)
        with self.ledger.lock:
            if status == 200:
                self.ledger.acked[fpr] = level
            elif status == 503 and "x-consistency-acks" in headers:
                self.ledger.stored_on_timeout.add(fpr)
            elif status is None:
                self.ledger.uncertain.add(fpr)
            else:
                self.ledger.refused[status] += 1
                self.ledger.uncertain.add(fpr)
        if status == 200 and level != "one" and self.check_quorum:
            self._check_quorum(fpr, headers.get("x-consistency-acks", ""))

    def _check_quorum(self, fpr: str, acks: str) -> None:
        acked, _, needed = acks.partition("/")
        if not (acked.isdigit() and needed.isdigit()) or int(acked) < int(needed):
            self.ledger.quorum_short.append(f"{fpr}: 200 with X-Consistency-Acks={acks!r}")
            return
        answers = [self.cluster.serves(i, fpr) for i in range(self.cluster.n)]
        holding = sum(1 for a in answers if a is not False)  # serving, or not answering
        if holding < int(needed):
            with self.ledger.lock:
                self.ledger.quorum_short.append(
                    f"{fpr}: acked {acks} but only {holding} nodes serve it (answers={answers})")

    def _delete(self, target: int) -> None:
        candidates = self.ledger.must_be_present()
        if not candidates:
            return
        fpr = self.rng.choice(candidates)
        node = self.cluster.nodes[target]
        if node is None:
            return
        try:
            reply = node.request(
                "DELETE", f"/cluster/keys/{fpr}?reason=chaos&actor=chaos",
                headers={"Authorization": f"Bearer {self.cluster.delete_token(target)}"},
                timeout=REQUEST_TIMEOUT_S,
            )
        except OSError:
            with self.ledger.lock:
                self.ledger.delete_uncertain.add(fpr)
            return
        if reply.status != 200 or not json.loads(reply.body)["deleted"]:
            with self.ledger.lock:
                self.ledger.refused[reply.status] += 1
            return
        with self.ledger.lock:
            self.ledger.deleted.add(fpr)
        # Try to bring it back through another node, which may not have the tombstone yet.
        other = self._pick(avoid=target)
        if other is not None:
            status, _ = self._post(other, self.ledger.keytext[fpr], "one")
            with self.ledger.lock:
                self.ledger.reuploads[status or 0] += 1


def wait_writes(ledger: Ledger, count: int, timeout: float) -> None:
    """Block until `count` writes were attempted (or timeout): a fault lands mid-stream."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ledger.lock:
            if ledger.attempted >= count:
                return
        time.sleep(0.05)
