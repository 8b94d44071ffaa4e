"""Durations ("1s", "50ms", "2m30s") and sizes ("64MiB", 4096) as an operator writes them.

Durations follow Go's `time.ParseDuration` (what Consul, Nomad and hashicorp/raft configs
use): a unit is required, because a bare `30` could mean seconds or milliseconds. Sizes are an
integer of bytes, or a number with a binary (KiB, MiB, GiB) or decimal (kB, MB, GB) unit.
"""

from __future__ import annotations

import re

# Seconds per duration unit.
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# Bytes per size unit; decimal and binary units kept apart, as the IEC defines them.
SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
              "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|ms|s|m|h)")
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ns|us|µs|ms|s|m|h))+")
_SIZE = re.compile(rf"({_NUMBER})\s*([a-z]*)", re.IGNORECASE)

DURATION_HINT = 'a duration with a unit, like "1s", "50ms", "2m" or "1m30s"'
SIZE_HINT = 'a size in bytes, like 4096, "512KiB", "64MiB" or "1GB"'


def parse_duration(text: str) -> float:
    """Seconds in `text` ("1s", "50ms", "1m30s", "0"); ValueError naming the expected form."""
    compact = text.strip().replace("_", "")
    if compact == "0":
        return 0.0
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"{text!r} is not {DURATION_HINT}")
    return sum(float(number) * DURATION_UNITS[unit]
               for number, unit in _DURATION_PART.findall(compact))


def parse_size(text: str) -> int:
    """Bytes in `text` ("64MiB", "1.5 GiB", "4096"); ValueError naming the expected form."""
    match = _SIZE.fullmatch(text.strip().replace("_", ""))
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in SIZE_UNITS):
        raise ValueError(f"{text!r} is not {SIZE_HINT}")
    value = float(match.group(1)) * SIZE_UNITS.get(unit, 1)
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` in the largest unit that fits ("500ms", "24h")."""
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """`size` in the largest binary unit that divides it ("64MiB"), else in bytes."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        step = SIZE_UNITS[unit.lower()]
        if size >= step and size % step == 0:
            return f"{size // step}{unit}"
    return str(size)
