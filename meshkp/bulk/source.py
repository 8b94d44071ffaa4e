"""Open one input file of `meshkp load` and present it as binary keyring pieces.

The format is detected from the content, never the file name (SKS dumps, `gpg --export`
output and `.asc` files are all named freely): OpenPGP binary data always starts with a
packet header, whose bit 7 is set (RFC 9580 §4.2); anything else must be ASCII armor
(RFC 9580 §6), which may hold several blocks.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from meshkp.errors import ArmorError, MeshkpError
from meshkp.openpgp.armor import dearmor


class InputKind(str, Enum):
    BINARY = "binary"  # a keyring or an SKS/Hockeypuck dump file (concatenated keys)
    ARMORED = "armored"
    EMPTY = "empty"


class InputError(MeshkpError):
    """An input file cannot be read as keys; nothing of it was stored."""


@dataclass(frozen=True, slots=True)
class Piece:
    """Binary keyring data from a file; `weight` is its share of the file's size on disk."""

    data: bytes | mmap.mmap
    weight: int


# Editors on Windows start text files with a UTF-8 byte order mark; its first byte has bit 7
# set, so without this check an armored file would be taken for binary.
UTF8_BOM = b"\xef\xbb\xbf"


def detect(head: bytes) -> InputKind:
    """The kind of an input from its first bytes."""
    head = head.removeprefix(UTF8_BOM)
    stripped = head.lstrip()
    if not head:
        return InputKind.EMPTY
    if head[0] & 0x80:
        return InputKind.BINARY
    if not stripped:
        return InputKind.EMPTY
    return InputKind.ARMORED


@contextmanager
def open_pieces(path: Path) -> Iterator[tuple[InputKind, list[Piece]]]:
    """The file's binary pieces: an mmap of a binary file (no copy), or each decoded armor block."""
    try:
        size = os.path.getsize(path)
        handle = open(path, "rb")  # noqa: SIM115 - closed in finally, outlives the mmap
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        kind = detect(handle.read(4096))
        if kind is InputKind.EMPTY:
            yield kind, []
        elif kind is InputKind.BINARY:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield kind, [Piece(mapped, size)]
            finally:
                mapped.close()
        else:
            handle.seek(0)
            try:
                blocks = dearmor(handle.read().removeprefix(UTF8_BOM))
            except ArmorError as exc:
                raise InputError(
                    f"{path}: not binary OpenPGP (first byte has bit 7 clear) and not valid "
                    f"ASCII armor: {exc}"
                ) from None
            decoded = sum(len(block) for block in blocks) or 1
            yield kind, [Piece(block, size * len(block) // decoded) for block in blocks]
    finally:
        handle.close()
