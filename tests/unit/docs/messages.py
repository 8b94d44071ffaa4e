"""The operator-facing error messages of the code, read from its source (not imported).

An operator-facing message is the text given to:
- `click.ClickException`, `click.UsageError`, `click.BadParameter` (what a `meshkp` command prints);
- an aiohttp `web.HTTP...(text=... | reason=...)` (what a client or admin gets back);
- a `MeshkpError` subclass raised in the modules of OPERATOR_MODULES (what a command, a
  node's start or a 4xx/5xx reply shows), except the wire errors a peer's bytes cause (counted
  drops, `meshkp_frames_dropped_total`) and the usage errors that are bugs of meshkp itself.

Each message is known by its *key*: its longest literal run (the text between the
placeholders of an f-string), whitespace collapsed. docs/troubleshooting.md must contain every
key; `python -m tests.unit.docs.messages` prints the keys the doc lacks, with where each is raised.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "troubleshooting.md"

CLICK_ERRORS = frozenset({"ClickException", "UsageError", "BadParameter"})
# Raised because of the operator's input or environment (config, files, commands, requests).
# Left out: the checks of a peer's or an uploader's bytes (replication/validate.py,
# snapshot_check.py, openpgp/, keys/record.py, discovery/dnswire.py...), which are answered to
# that peer or client, or counted and logged as drops (docs/hkp.md, docs/cluster-security.md).
OPERATOR_MODULES = (
    "cli/",
    "meshkp/http/",
    "meshkp/node/",
    "meshkp/bulk/",
    "meshkp/store/leveldb.py",
    "meshkp/net/identity.py",
    "meshkp/net/crypto.py",
    "meshkp/net/secretfile.py",
    "meshkp/net/addr.py",
    "meshkp/limits.py",
    "meshkp/control/config.py",
    "meshkp/control/storage.py",
    "meshkp/control/raft/recovery.py",
    "meshkp/control/policy/commands.py",
    "meshkp/control/driver/plane.py",
    "meshkp/replication/config.py",
    "meshkp/replication/consistency.py",
    "meshkp/membership/config.py",
    "meshkp/membership/sockets.py",
    "meshkp/swim/config.py",
    "meshkp/discovery/dns.py",
    "meshkp/discovery/mdns.py",
    "meshkp/keys/query.py",
)
# Error classes that are never the operator's: a peer's bytes, or a bug in meshkp.
NOT_OPERATOR_ERRORS = frozenset({
    "WireError", "FrameTooLarge", "DecryptError", "UnsupportedWireVersion", "UnknownFrameType",
    "BadSignature", "IdentityMismatch", "ReplayedFrame", "FrameClockSkew", "DecompressError",
    "RaftUsageError", "StoreUsageError", "InvalidPeerRecord",
})
# A key shorter than this says nothing on its own ("got ", ": "): such a message is known by
# its literal runs joined instead.
MIN_KEY_CHARS = 12


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    where: str  # path:line
    kind: str  # the exception class


def _error_classes() -> frozenset[str]:
    tree = ast.parse((ROOT / "meshkp" / "errors.py").read_text())
    names = {"MeshkpError"}
    changed = True
    while changed:
        changed = False
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name not in names and any(
                    isinstance(b, ast.Name) and b.id in names for b in node.bases):
                names.add(node.name)
                changed = True
    return frozenset(names - NOT_OPERATOR_ERRORS)


def _runs(node: ast.expr) -> list[str] | None:
    """The literal runs of a str constant, f-string or concatenation; None if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        runs, current = [], ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                current += str(value.value)
            else:
                runs.append(current)
                current = ""
        return [*runs, current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _runs(node.left), _runs(node.right)
        if left is None or right is None:
            return None
        return [*left[:-1], left[-1] + right[0], *right[1:]]
    return None


def normalise(text: str) -> str:
    """Case and spacing do not count; "…" stands for a placeholder, spaces around it do not count."""
    return re.sub(r"\s*…\s*", "…", re.sub(r"\s+", " ", text)).strip().lower()


def key_of(runs: list[str]) -> str:
    """The message's key, as written in the doc (any case): its longest literal run, or its
    runs joined by "…" where each placeholder was when that run is too short to say anything."""
    longest = re.sub(r"\s+", " ", max(runs, key=len)).strip(" :;,.(")
    if len(longest) >= MIN_KEY_CHARS:
        return longest
    return "…".join(r.strip() for r in runs if r.strip())


def operator_messages() -> list[Message]:
    """Every operator-facing message of the code, in source order."""
    errors = _error_classes()
    found = []
    for path in sorted([*(ROOT / "meshkp").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        in_scope = rel.startswith(OPERATOR_MODULES)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            text: ast.expr | None = None
            if name in CLICK_ERRORS or (in_scope and name in errors):
                text = node.args[0] if node.args else None
            elif name.startswith("HTTP") and isinstance(func, ast.Attribute) and func.attr != "HTTPOk":
                text = next((k.value for k in node.keywords if k.arg in ("text", "reason")), None)
            runs = _runs(text) if text is not None else None
            if runs and normalise("".join(runs)):
                found.append(Message(key_of(runs), f"{rel}:{node.lineno}", name))
    return found


def missing_from(doc_text: str) -> list[Message]:
    """The messages whose key the doc does not contain."""
    doc = normalise(doc_text.replace("`", ""))
    return [m for m in operator_messages() if normalise(m.key.replace("`", "")) not in doc]


if __name__ == "__main__":
    lacking = missing_from(DOC.read_text() if DOC.exists() else "")
    for message in lacking:
        print(f"{message.where}: {message.kind}: {message.key}")
    print(f"{len(lacking)} message(s) missing from {DOC.relative_to(ROOT)}", file=sys.stderr)
