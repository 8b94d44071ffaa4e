"""The config file: TOML text -> a layer of settings, with every problem on its line.

Read once by the CLI before the node starts (nothing here runs on the event loop or in a
constructor). tomllib stops at the first syntax error and says where; past the syntax, every
unknown key, wrong type and unreadable value is collected, so one run lists them all.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from meshkp.node.settings.keys import KEYS_BY_PATH, SECTIONS, Key
from meshkp.node.settings.layers import FILE, Layer, Origin, Problem, Setting
from meshkp.node.settings.toml_lines import key_lines, line_of

_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SUGGEST_CUTOFF = 0.6


def read_config_file(path: Path) -> tuple[Layer, list[Problem]]:
    """The settings of the TOML file at `path` and the problems found in it (blocking read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {}, [Problem(f"{path}: cannot read the config file: {reason}")]
    return parse_config_text(text, str(path))


def parse_config_text(text: str, name: str) -> tuple[Layer, list[Problem]]:
    """The settings of TOML `text` (called `name` in messages) and its problems, in line order."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [_syntax_problem(exc, name)]
    lines = key_lines(text)
    layer: Layer = {}
    problems: list[Problem] = []
    _walk(document, (), name, lines, layer, problems)
    return layer, sorted(problems, key=lambda p: p.line)


def _syntax_problem(exc: tomllib.TOMLDecodeError, name: str) -> Problem:
    message = str(exc)
    match = _AT_LINE.search(message)
    if match is None:
        return Problem(f"{name}: not valid TOML: {message}")
    line, column = int(match.group(1)), int(match.group(2))
    reason = message[:match.start()]
    origin = Origin(FILE, name, "TOML syntax", line)
    return Problem(f"{reason[0].lower()}{reason[1:]} at column {column}", origin)


def _walk(table: Mapping[str, object], prefix: tuple[str, ...], name: str,
          lines: dict[tuple[str, ...], int], layer: Layer, problems: list[Problem]) -> None:
    for item, value in table.items():
        path = (*prefix, item)
        dotted = ".".join(path)
        line = line_of(lines, path) or 0
        key = KEYS_BY_PATH.get(dotted)
        if key is not None:
            _read_key(key, value, Origin(FILE, name, key.label, line), layer, problems)
        elif dotted in SECTIONS:
            if isinstance(value, dict):
                _walk(value, path, name, lines, layer, problems)
            else:
                problems.append(Problem(f"is a table: write it as [{dotted}] with its keys below",
                                        Origin(FILE, name, dotted, line)))
        else:
            problems.append(_unknown(path, value, Origin(FILE, name, _label(path), line)))


def _read_key(key: Key, value: object, origin: Origin, layer: Layer,
              problems: list[Problem]) -> None:
    try:
        parsed = key.kind.from_toml(value)
    except ValueError as exc:
        problems.append(Problem(str(exc), origin))
        return
    for target, part in key.assign(parsed).items():
        layer[target] = Setting(part, origin)


def _label(path: tuple[str, ...]) -> str:
    return f"[{'.'.join(path[:-1])}] {path[-1]}" if len(path) > 1 else path[0]


def _unknown(path: tuple[str, ...], value: object, origin: Origin) -> Problem:
    """An unknown key or table, with the closest known name when there is one."""
    section = ".".join(path[:-1])
    what = "table" if isinstance(value, dict) else "key"
    if section and section not in SECTIONS:
        return Problem(f"unknown {what} (its table [{section}] is unknown too)", origin)
    siblings = [p.rpartition(".")[2] for p in (*KEYS_BY_PATH, *SECTIONS)
                if p.rpartition(".")[0] == section]
    close = difflib.get_close_matches(path[-1], siblings, n=1, cutoff=_SUGGEST_CUTOFF)
    if close:
        hint = f"did you mean {close[0]}?"
    else:
        where = f"[{section}]" if section else "the top level"
        hint = f"{where} takes: {', '.join(sorted(dict.fromkeys(siblings)))}"
    return Problem(f"unknown {what}; {hint}", origin)
