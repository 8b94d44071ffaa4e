"""The backup file: a magic line, length-prefixed msgpack frames, a trailer that proves it whole.

    MAGIC                        b"MESHKP-BACKUP\\n"
    frame                        u32 BE length + msgpack [kind, body]
      ["h", {header}]            first: format, schema, node, created, policy_version,
                                 policy, merkle_root, records
      ["r", [[key, value], ...]] rows of one LevelDB snapshot, raw keys in key order
      ["t", {"rows": N, "sha256": HEX}]   last: the row count and the SHA-256 of every byte
                                 before the trailer frame (magic and frames)

`GET /cluster/backup` writes it as it reads the snapshot (meshkp/http/backup.py), `meshkp
backup` saves it as it comes, `meshkp restore` (meshkp/bulk/restore.py) reads it back. A file
cut short, reordered or altered anywhere fails the trailer check, and nothing is restored.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

import msgpack

from meshkp.errors import BackupError
from meshkp.store import layout

MAGIC = b"MESHKP-BACKUP\n"
FORMAT_VERSION = 1
HEADER, ROWS, TRAILER = "h", "r", "t"

# A frame holds one row at least, and a row's value is at most layout.MAX_VALUE_BYTES: a frame
# longer than that plus room for the keys is a corrupt length, refused before allocating it.
MAX_FRAME_BYTES = layout.MAX_VALUE_BYTES + 1024 * 1024
# Rows per frame are cut at about this many bytes, so a frame is small next to a socket buffer
# and a reader never holds more than one of them.
FRAME_TARGET_BYTES = 512 * 1024

_LENGTH = struct.Struct(">I")
_NAMESPACES = frozenset((layout.META, layout.RECORD, layout.INDEX, layout.COUNTER, layout.EXTRA))


@dataclass(frozen=True, slots=True)
class BackupHeader:
    """What a backup says about itself; written first, so a reader knows it before the rows."""

    node: str
    created: str  # ISO 8601 UTC
    policy_version: int
    merkle_root: str  # hex, of the snapshot's own Merkle tree
    records: int  # records in the snapshot (live keys and tombstones): the progress total
    policy: dict[str, Any] = field(default_factory=dict)  # GET /cluster/policy as of the snapshot
    schema: int = layout.SCHEMA_VERSION
    format: int = FORMAT_VERSION

    def to_obj(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_obj(cls, obj: Any) -> BackupHeader:
        if not isinstance(obj, dict):
            raise BackupError("the backup header is not a map: the file is corrupt")
        if obj.get("format") != FORMAT_VERSION:
            raise BackupError(f"backup format {obj.get('format')!r} is not the one this meshkp "
                              f"reads ({FORMAT_VERSION}): restore it with the meshkp that wrote it")
        if obj.get("schema") != layout.SCHEMA_VERSION:
            raise BackupError(f"the backup holds store schema {obj.get('schema')!r}, this meshkp "
                              f"stores v{layout.SCHEMA_VERSION}: restore it with the meshkp that wrote it")
        try:
            return cls(node=str(obj["node"]), created=str(obj["created"]),
                       policy_version=int(obj["policy_version"]),
                       merkle_root=str(obj["merkle_root"]), records=int(obj["records"]),
                       policy=dict(obj.get("policy") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"the backup header lacks or mangles {exc}: the file is corrupt") from None


def frame(kind: str, body: Any) -> bytes:
    """One length-prefixed frame."""
    payload: bytes = msgpack.packb([kind, body], use_bin_type=True)
    return _LENGTH.pack(len(payload)) + payload


class BackupWriter:
    """Frames a snapshot's rows, hashing every byte for the trailer; `chunks` are what to send."""

    def __init__(self, header: BackupHeader) -> None:
        self._digest = hashlib.sha256()
        self._pending: list[tuple[bytes, bytes]] = []
        self._pending_bytes = 0
        self.rows = 0
        self._start = self._hashed(MAGIC + frame(HEADER, header.to_obj()))

    def start(self) -> bytes:
        """The magic and the header frame."""
        return self._start

    def add(self, rows: Sequence[tuple[bytes, bytes]]) -> bytes:
        """The frames that rows complete (b"" while a frame is still filling)."""
        out = []
        for key, value in rows:
            self._pending.append((key, value))
            self._pending_bytes += len(key) + len(value)
            if self._pending_bytes >= FRAME_TARGET_BYTES:
                out.append(self._flush())
        return b"".join(out)

    def finish(self) -> bytes:
        """The last rows frame, if any, and the trailer."""
        tail = self._flush() if self._pending else b""
        trailer = frame(TRAILER, {"rows": self.rows, "sha256": self._digest.hexdigest()})
        return tail + trailer

    def _flush(self) -> bytes:
        self.rows += len(self._pending)
        data = frame(ROWS, [[key, value] for key, value in self._pending])
        self._pending, self._pending_bytes = [], 0
        return self._hashed(data)

    def _hashed(self, data: bytes) -> bytes:
        self._digest.update(data)
        return data


@dataclass(slots=True)
class BackupReader:
    """Reads a backup file: `header` first, then `batches()` of checked rows, trailer verified."""

    source: BinaryIO
    header: BackupHeader | None = None
    rows: int = 0
    _digest: Any = field(default_factory=hashlib.sha256)

    def read_header(self) -> BackupHeader:
        magic = self._read(len(MAGIC), "the magic line")
        if magic != MAGIC:
            raise BackupError("this is not a meshkp backup file (it does not start with "
                              f"{MAGIC!r}): pass a file written by `meshkp backup`")
        self._digest.update(magic)
        kind, body = self._frame()
        if kind != HEADER:
            raise BackupError("the backup's first frame is not its header: the file is corrupt")
        self.header = BackupHeader.from_obj(body)
        return self.header

    def batches(self) -> Iterator[list[tuple[bytes, bytes]]]:
        """Each rows frame, until the trailer, which must match; BackupError otherwise."""
        while True:
            digest_before = self._digest.hexdigest()
            kind, body = self._frame()
            if kind == TRAILER:
                self._check_trailer(body, digest_before)
                return
            if kind != ROWS or not isinstance(body, list):
                raise BackupError(f"unexpected frame {kind!r} in the backup: the file is corrupt")
            batch = [_row(item) for item in body]
            self.rows += len(batch)
            yield batch

    def _check_trailer(self, body: Any, digest: str) -> None:
        if not isinstance(body, dict):
            raise BackupError("the backup trailer is not a map: the file is corrupt")
        if body.get("rows") != self.rows or body.get("sha256") != digest:
            raise BackupError(f"the backup fails its integrity check (trailer: {body.get('rows')} rows, "
                              f"sha256 {str(body.get('sha256'))[:16]}...; read: {self.rows} rows, "
                              f"sha256 {digest[:16]}...): the file is corrupt, take a new backup")
        if self.source.read(1):
            raise BackupError("the backup has bytes after its trailer: the file is corrupt")

    def _frame(self) -> tuple[str, Any]:
        raw_length = self._read(_LENGTH.size, "a frame length")
        (length,) = _LENGTH.unpack(raw_length)
        if length > MAX_FRAME_BYTES:
            raise BackupError(f"a backup frame claims {length} bytes (bound {MAX_FRAME_BYTES}): "
                              "the file is corrupt")
        payload = self._read(length, "a frame")
        self._digest.update(raw_length + payload)
        try:
            kind, body = msgpack.unpackb(payload, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BackupError(f"a backup frame does not decode ({exc}): the file is corrupt") from None
        return str(kind), body

    def _read(self, size: int, what: str) -> bytes:
        data = self.source.read(size)
        if len(data) != size:
            raise BackupError(f"the backup ends inside {what} after {self.rows} rows: the file is "
                              "truncated (an interrupted `meshkp backup`?); take a new backup")
        return data


def _row(item: Any) -> tuple[bytes, bytes]:
    if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], bytes)
            or not isinstance(item[1], bytes)):
        raise BackupError("a backup row is not a (key, value) pair of bytes: the file is corrupt")
    key, value = item
    if key[:1] not in _NAMESPACES:
        raise BackupError(f"a backup row has a key outside the store's namespaces ({key[:8]!r}): "
                          "the file is corrupt")
    return key, value
