"""Builders for store tests: fingerprints, terms and writes with readable defaults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from meshkp.store.protocol import IndexKind, IndexTerm, RecordWrite


def fpr(n: int, length: int = 20) -> bytes:
    """A deterministic raw fingerprint of the given length (16, 20 or 32)."""
    return hashlib.sha256(n.to_bytes(8, "big")).digest()[:length]


def terms(*pairs: tuple[IndexKind, bytes]) -> frozenset[IndexTerm]:
    """A frozenset of index terms."""
    return frozenset(pairs)


def put(
    fingerprint: bytes,
    record: bytes | None = b"record",
    *,
    old: Iterable[IndexTerm] = (),
    new: Iterable[IndexTerm] = (),
    counters: Mapping[str, int] | None = None,
    extra: Sequence[tuple[bytes, bytes | None]] = (),
) -> RecordWrite:
    """A RecordWrite with short keyword arguments."""
    return RecordWrite(
        fingerprint=fingerprint,
        record=record,
        old_terms=frozenset(old),
        new_terms=frozenset(new),
        counters=dict(counters or {}),
        extra=tuple(extra),
    )
