"""SKS / Hockeypuck dump files: `hkp-dump-NNNN.pgp`, binary concatenated transferable keys.

This is the format `hockeypuck-dump` writes (`-count` keys per file, default 15000,
names `hkp-dump-%04d.pgp`) and `hockeypuck-load` and `sks build` read: plain OpenPGP
binary keys back to back, no header, no index. Reading one is reading a binary keyring
(see meshkp.bulk.source); this module writes them, streaming from the store so that a
dump of millions of keys never holds more than one key in memory.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from meshkp.errors import MeshkpError
from meshkp.keys.record import served_certificate_bytes

log = logging.getLogger(__name__)

# hockeypuck-dump's default `-count`: files of ~15000 keys stay a few hundred MB at most.
DEFAULT_KEYS_PER_FILE = 15000
DUMP_NAME = re.compile(r"^(?:hkp|sks)-dump-\d{4,}\.pgp$")
_PARTIAL = ".partial"


class DumpError(MeshkpError):
    """A dump cannot be written (output directory unusable or already holding a dump)."""


def dump_file_name(number: int) -> str:
    return f"hkp-dump-{number:04d}.pgp"


def dump_files(directory: Path) -> list[Path]:
    """The dump files of a directory in load order (hkp-dump-* and sks-dump-*)."""
    return sorted(p for p in directory.iterdir() if DUMP_NAME.match(p.name) and p.is_file())


@dataclass(slots=True)
class DumpSummary:
    keys: int = 0
    skipped_deleted: int = 0
    bytes: int = 0
    files: list[Path] = field(default_factory=list)


def write_dump(
    records: Iterable[tuple[bytes, bytes]],
    out_dir: Path,
    keys_per_file: int = DEFAULT_KEYS_PER_FILE,
    progress: Callable[[int], None] | None = None,
) -> DumpSummary:
    """Write the live keys of `records` (fingerprint, encoded record) as dump files in out_dir.

    Each file is written as `*.partial` and renamed when complete, so an interrupted dump
    never leaves a file that looks whole. `progress(n)` is called per record read.
    """
    if keys_per_file <= 0:
        raise DumpError(f"--keys-per-file must be positive, got {keys_per_file}")
    _prepare(out_dir)
    summary = DumpSummary()
    writer: _FileWriter | None = None
    try:
        for _fingerprint, record in records:
            if progress is not None:
                progress(1)
            # Deleted and conflicted keys are not served, so they are not dumped either.
            key = served_certificate_bytes(record)
            if key is None:
                summary.skipped_deleted += 1
                continue
            if writer is None or writer.keys >= keys_per_file:
                if writer is not None:
                    summary.files.append(writer.finish())
                writer = _FileWriter(out_dir / dump_file_name(len(summary.files)))
            writer.write(key)
            summary.keys += 1
            summary.bytes += len(key)
        if writer is not None:
            summary.files.append(writer.finish())
            writer = None
    finally:
        if writer is not None:
            writer.abandon()
    log.info("event=dump_written keys=%d files=%d bytes=%d skipped_deleted=%d dir=%s",
             summary.keys, len(summary.files), summary.bytes, summary.skipped_deleted, out_dir)
    return summary


def _prepare(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DumpError(f"cannot create output directory {out_dir}: {exc.strerror}") from None
    existing = dump_files(out_dir)
    if existing:
        raise DumpError(
            f"{out_dir} already holds a dump ({existing[0].name}, ...); "
            "choose an empty directory so two dumps are never mixed"
        )


class _FileWriter:
    """One dump file being written under a temporary name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + _PARTIAL)
        self.handle = open(self.partial, "wb")  # noqa: SIM115 - closed by finish/abandon
        self.keys = 0

    def write(self, key: bytes) -> None:
        self.handle.write(key)
        self.keys += 1

    def finish(self) -> Path:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.path)
        return self.path

    def abandon(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)
