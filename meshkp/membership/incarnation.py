"""The incarnation a node starts with: above its previous life's, so a restart is news at once.

Kept in DATA_DIR/incarnation. Without it a restarted node starts at 1 and has to learn of its
own death (push-pull, reconnect pings) before it refutes; with it, its first alive wins.

A saved value at or above the wire maximum (a forged accusation made us refute up to it before
incarnations were bounded) is useless: peers drop frames above the maximum, and at it we could
never refute again. Such a node starts over at 1, logged as event=incarnation_reset, and learns
the incarnation its peers hold from its join push-pull, which it then refutes one above.
"""

from __future__ import annotations

import logging
from pathlib import Path

from meshkp.swim.fields import MAX_COUNTER

log = logging.getLogger(__name__)

INCARNATION_FILE = "incarnation"


def next_incarnation(data_dir: Path | None) -> int:
    """One above the saved incarnation (1 without a data dir or a readable file), saved at once."""
    if data_dir is None:
        return 1
    path = data_dir / INCARNATION_FILE
    try:
        previous = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        previous = 0
    if previous >= MAX_COUNTER:
        log.warning("event=incarnation_reset path=%s saved=%d reason=at_or_above_wire_maximum",
                    path, previous)
        previous = 0
    incarnation = max(previous, 0) + 1
    save_incarnation(data_dir, incarnation)
    return incarnation


def save_incarnation(data_dir: Path | None, incarnation: int) -> None:
    """Write the incarnation atomically (temporary file, then rename); log, never raise, on error."""
    if data_dir is None:
        return
    path = data_dir / INCARNATION_FILE
    try:
        tmp = path.with_name(INCARNATION_FILE + ".tmp")
        tmp.write_text(f"{incarnation}\n", encoding="ascii")
        tmp.replace(path)
    except OSError as exc:
        log.warning("event=incarnation_save_failed path=%s error=%r", path, exc)
