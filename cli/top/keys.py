"""Keys of `meshkp top`: what a key does to the view (ViewState) and reading keys from a tty
without blocking (KeyReader: cbreak mode, select with a timeout)."""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from cli.top.model import SORT_KEYS, MemberRow, Snapshot, filter_rows, sort_rows

UP, DOWN, ENTER, ESCAPE, BACKSPACE = "up", "down", "enter", "escape", "backspace"
_SEQUENCES = {"\x1b[A": UP, "\x1bOA": UP, "\x1b[B": DOWN, "\x1bOB": DOWN, "\r": ENTER,
              "\n": ENTER, "\x1b": ESCAPE, "\x7f": BACKSPACE, "\x08": BACKSPACE}
MAX_FILTER_CHARS = 32


@dataclass
class ViewState:
    """Sort column, id filter, selected row and detail panel: what keys change."""

    sort_index: int = 0
    filter_text: str = ""
    filtering: bool = False
    selected: int = 0
    detail: bool = False

    @property
    def sort_column(self) -> str:
        return SORT_KEYS[self.sort_index]

    def visible(self, snapshot: Snapshot) -> list[MemberRow]:
        rows = filter_rows(snapshot.members, self.filter_text)
        return sort_rows(rows, self.sort_column, snapshot.leader)

    def clamp(self, count: int) -> None:
        self.selected = max(0, min(self.selected, count - 1))

    def handle(self, key: str) -> bool:
        """Apply one key; False when it asks to quit."""
        if self.filtering:
            if key == ENTER:
                self.filtering = False
            elif key == ESCAPE:
                self.filtering, self.filter_text = False, ""
            elif key == BACKSPACE:
                self.filter_text = self.filter_text[:-1]
            elif len(key) == 1 and key.isprintable() and len(self.filter_text) < MAX_FILTER_CHARS:
                self.filter_text += key
            self.selected = 0
            return True
        if key == "q":
            return False
        if key == "s":
            self.sort_index = (self.sort_index + 1) % len(SORT_KEYS)
        elif key == "/":
            self.filtering = True
        elif key in ("j", DOWN):
            self.selected += 1
        elif key in ("k", UP):
            self.selected = max(0, self.selected - 1)
        elif key == ENTER:
            self.detail = not self.detail
        elif key == ESCAPE:
            self.detail = False
        return True


def decode(raw: str) -> list[str]:
    """Keys in what one read returned (escape sequences as names, other characters as such)."""
    keys, rest = [], raw
    while rest:
        for sequence in sorted(_SEQUENCES, key=len, reverse=True):
            if rest.startswith(sequence):
                keys.append(_SEQUENCES[sequence])
                rest = rest[len(sequence):]
                break
        else:
            keys.append(rest[0])
            rest = rest[1:]
    return keys


class KeyReader:
    """Keys from stdin in cbreak mode, restored on exit; reads nothing when stdin is no tty."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        if self.fd is not None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None and self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> list[str]:
        """Keys pressed within `timeout` seconds (waits the whole timeout without a tty)."""
        if self.fd is None:
            select.select([], [], [], timeout)
            return []
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        return decode(os.read(self.fd, 64).decode("utf-8", "replace"))
