"""Imports run down the layers, read from the code's own imports (ast), so the rule cannot drift.

The order, top to bottom (docs/architecture.md): a module may import its own layer and any
layer below it, never one above, not even lazily inside a function. The protocol cores take
`now` and messages and return effects: they import no I/O or concurrency library.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Top to bottom; names in one tuple are one layer (they may import each other's modules).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("meshkp.node",),
    ("meshkp.http",),
    ("meshkp.bulk",),
    ("meshkp.replication", "meshkp.control"),
    ("meshkp.sim",),
    ("meshkp.membership",),
    ("meshkp.keys",),
    ("meshkp.swim", "meshkp.discovery"),
    ("meshkp.net",),
    ("meshkp.store",),
    ("meshkp.openpgp",),
    ("crdt",),
    # Shared by everyone: the error types, the client-facing limits, injected time.
    ("meshkp.errors", "meshkp.limits", "meshkp.clock", "meshkp"),
)
# Protocol cores: sans-I/O (STYLE.md §1). The Raft core is every module of meshkp/control
# except its driver and its storage adapter, which apply the core's effects.
CORES = ("crdt", "meshkp.swim", "meshkp.control")
CORE_DRIVERS = ("meshkp.control.driver", "meshkp.control.storage")
IO_MODULES = ("asyncio", "socket", "plyvel", "aiohttp", "threading")


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer that owns `module` (longest prefix wins), or None."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            owns = module == name or module.startswith(name + ".")
            if owns and (best is None or len(name) > best[1]):
                best = (index, len(name))
    return best[0] if best is not None else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in `source` (the code of `module`), at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from meshkp import node` imports the module meshkp.node
                yield node.lineno, f"{target}.{alias.name}"


def upward_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """The imports of `module` that reach a layer above its own."""
    own = layer_of(module)
    assert own is not None, f"{module} belongs to no layer: add its package to LAYERS"
    found = []
    for line, target in imports_in(source, module, is_package):
        other = layer_of(target)
        # `from pkg import name` also yields pkg.name, which may be a function, not a module:
        # judge it by its package then.
        parent = target.rsplit(".", 1)[0]
        if other is not None and other < own and layer_of(parent) != own and (line, parent) not in found:
            found.append((line, target))
    return found


def sources() -> list[Path]:
    found: list[Path] = []
    for top in ("cli", "meshkp", "crdt"):
        found.extend(sorted((ROOT / top).rglob("*.py")))
    return found


def test_every_import_runs_down_the_layers() -> None:
    upward = []
    for path in sources():
        source = path.read_text(encoding="utf-8")
        relative = path.relative_to(ROOT)
        for line, target in upward_imports(source, module_name(path), path.name == "__init__.py"):
            upward.append(f"{relative}:{line} imports {target}")
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_protocol_cores_do_no_io() -> None:
    offenders = []
    for path in sources():
        module = module_name(path)
        if not any(module == c or module.startswith(c + ".") for c in CORES):
            continue
        if any(module == d or module.startswith(d + ".") for d in CORE_DRIVERS):
            continue
        source = path.read_text(encoding="utf-8")
        for line, target in imports_in(source, module, path.name == "__init__.py"):
            if target.split(".")[0] in IO_MODULES:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not offenders, "protocol cores importing I/O:\n" + "\n".join(offenders)


@pytest.mark.parametrize(("module", "expected"), [
    ("cli.serve", 0), ("meshkp.node.node", 1), ("meshkp.keys.service", 7), ("crdt.vclock", 12),
    ("meshkp.errors", 13), ("meshkp.net.addr", 9), ("meshkp.control.raft", 4),
])
def test_layer_table(module: str, expected: int) -> None:
    assert layer_of(module) == expected


def test_the_checker_sees_lazy_and_relative_upward_imports() -> None:
    # The checker itself: an import inside a function counts as much as one at the top, and a
    # relative import is resolved against the module's package.
    lazy = "def f():\n    from meshkp.http import app\n"
    assert upward_imports(lazy, "meshkp.keys.service") == [(2, "meshkp.http")]
    relative = "from ..http.app import make_app\n"
    assert upward_imports(relative, "meshkp.keys.service") == [(1, "meshkp.http.app")]
    assert upward_imports("from meshkp.keys.cache import ServedCache\n", "meshkp.http.app") == []
