"""The recorded history of a chaos run, in the manner of Jepsen: every client operation with its
invoke and complete times, the node it went to, and its result; plus the nemesis events.

An operation's result is `ok` (the mesh said it happened: 200), `fail` (it said it did not: a
4xx, a 503/507 with no write), or `info` (no answer: it may or may not have happened). Jepsen's
checkers never count an `info` write as lost nor as unexpected; this one does the same.
Times are `time.monotonic()` seconds relative to the history's start.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

OK, FAIL, INFO = "ok", "fail", "info"


@dataclass(slots=True)
class Op:
    """One client operation: `kind` is add, delete, read or policy; `key` a fingerprint or a
    policy value; `value` what a read saw (present/absent/wrong) or a write's status detail."""

    index: int
    process: str
    node: int
    kind: str
    key: str
    invoke: float
    complete: float | None = None
    result: str = INFO
    status: int | None = None
    level: str = ""
    value: str = ""


@dataclass(slots=True)
class Event:
    """A nemesis event: `start` or `stop` of a fault; `sides` are the groups it split (if any)."""

    at: float
    fault: str
    phase: str
    sides: list[list[int]] = field(default_factory=list)
    detail: str = ""


class History:
    """Thread-safe, append-only; writers call invoke() then complete() on what it returned."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.ops: list[Op] = []
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.began

    def invoke(self, process: str, node: int, kind: str, key: str, level: str = "") -> Op:
        with self._lock:
            op = Op(len(self.ops), process, node, kind, key, self.now(), level=level)
            self.ops.append(op)
            return op

    def complete(self, op: Op, result: str, status: int | None = None, value: str = "") -> None:
        with self._lock:
            op.complete, op.result, op.status, op.value = self.now(), result, status, value

    def event(self, fault: str, phase: str, sides: list[list[int]] | None = None,
              detail: str = "") -> Event:
        with self._lock:
            event = Event(self.now(), fault, phase, [list(s) for s in sides or []], detail)
            self.events.append(event)
            return event

    def snapshot(self) -> tuple[list[Op], list[Event]]:
        with self._lock:
            return list(self.ops), list(self.events)

    def save(self, path: Path) -> None:
        ops, events = self.snapshot()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"ops": [asdict(o) for o in ops],
                                    "events": [asdict(e) for e in events]}) + "\n")

    @classmethod
    def load(cls, path: Path) -> History:
        data = json.loads(path.read_text())
        history = cls()
        history.ops = [Op(**o) for o in data["ops"]]
        history.events = [Event(**e) for e in data["events"]]
        return history
