"""Knobs of the compact diff (crdt.recon) and the small helpers both of its sides use."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from crdt.diff_session import validate_session_bounds
from crdt.errors import CrdtConfigError, DiffProtocolError
from crdt.merkle import HASH_BYTES
from crdt.recon_body import (
    FULL_HASHES,
    MAX_INLINE_IDS,
    MAX_LISTING,
    MAX_V3_LISTING,
    MIN_HASH_BYTES,
    SHORT_DIGEST_BYTES,
    SHORT_HASHES,
    SHORT_ID_BYTES,
    TINY_HASH_BYTES,
    TINY_HASHES,
    pack_listing,
    pack_short_listing,
)
from crdt.recon_view import ARITY, QuadView, VPath, salted
from crdt.recon_wire import MIN_SALT_BYTES, V3, V3_ROOT_BYTES, ReconGeometry

# Node items and wants in one query. A diff of d differences asks about ~d at a time (a
# far-behind one gives up first); the bound keeps one query of a hostile peer to ~0.2 s of
# the responder's CPU (each item costs 4 subtree hashes), where 2 MiB of 7-byte items would
# be 300,000.
MAX_QUERY_ITEMS = 16_384
# Estimated bytes of one listed entry (id length, a 20-byte fingerprint, a short digest):
# decides between listing a subtree one side lacks and descending it.
ENTRY_ESTIMATE = 26


def _new_salt() -> bytes:
    return secrets.token_bytes(MIN_SALT_BYTES)


@dataclass(frozen=True, slots=True)
class ReconConfig:
    """Knobs of the compact diff; the tree geometry comes from the trees."""

    # Bytes of each subtree hash on the wire. A collision hides a difference for one round
    # with chance 2**-(8*hash_bytes) per differing subtree (the salt changes every round):
    # 4 bytes, once in 4 billion; each byte less saves ~1/4 of the descent.
    hash_bytes: int = 4
    # Hashes where differences are sparse (a node had one differing child of four, or the
    # level has 4 nodes or more per difference estimated so far: most of a diff's levels). A
    # collision of one differing child there leaves a node known to differ with no differing
    # child, which the initiator sees and asks again with whole hashes; only two differing
    # children, one of them colliding, go unseen (for that round).
    short_hash_bytes: int = 2
    # Bytes of each digest in a full listing: the same trade-off, per differing id. (A short
    # listing, v3, sends 3 bytes of id hash and 2 of digest hash; a subtree known to differ
    # whose short listing shows no difference is listed again in full.)
    digest_bytes: int = 4
    # List a differing subtree whose holder has at most this many ids instead of descending:
    # a listed entry (~25 B) costs about what 1.5 levels of descent do, and listing at 2
    # saves the last round trips (5 instead of 8 at d = 10 of 100,000). In v3 the initiator
    # marks such children of its own, and the responder lists those in short form.
    inline_ids: int = 2
    # Soft cap on one message; a peer's message over twice this is refused unread.
    max_message_bytes: int = 1 << 20
    # Round trips before the initiator gives up (a responder deferring forever).
    max_round_trips: int = 1000
    # Where the initiator's per-session salts come from (tests pass a fixed one).
    new_salt: Callable[[], bytes] = field(default=_new_salt, compare=False)

    def validate(self) -> None:
        """Raise CrdtConfigError if a field is out of range."""
        for name in ("hash_bytes", "short_hash_bytes", "digest_bytes"):
            value = getattr(self, name)
            if not MIN_HASH_BYTES <= value <= 32:
                raise CrdtConfigError(f"{name}={value}: must be in [{MIN_HASH_BYTES}, 32]")
        if not 0 <= self.inline_ids <= MAX_INLINE_IDS:
            raise CrdtConfigError(f"inline_ids={self.inline_ids}: must be in [0, {MAX_INLINE_IDS}]")
        validate_session_bounds(self.max_message_bytes, self.max_round_trips)

    @property
    def hard_limit(self) -> int:
        """Messages above this many bytes are refused without decoding."""
        return 2 * self.max_message_bytes


def hash_size(g: ReconGeometry, flags: int) -> int:
    """Bytes of the hashes of a node item with these path flags, and of NODE answers to it."""
    if flags & TINY_HASHES == TINY_HASHES:
        return TINY_HASH_BYTES
    if flags & FULL_HASHES:
        return HASH_BYTES
    return g.short_hash_bytes if flags & SHORT_HASHES else g.hash_bytes


def root_wire(root: bytes, g: ReconGeometry) -> bytes:
    """The root as a first query carries it: whole in v2, salted to 16 bytes in v3."""
    return salted(root, g.salt, V3_ROOT_BYTES) if g.version == V3 else root


def wire_hash(view: QuadView, vpath: VPath, salt: bytes, size: int) -> bytes | None:
    """A subtree's salted hash on the wire; None if it is empty. A one-byte hash is never 0:
    0 stands for an empty child where a payload has no mask (crdt.recon_body)."""
    slot = view.slot(vpath)
    if not slot.size:
        return None
    wire = salted(slot.hash, salt, size)
    return b"\x01" if size == TINY_HASH_BYTES and wire == b"\x00" else wire


def child_wires(view: QuadView, vpath: VPath, salt: bytes, size: int
                ) -> tuple[bytes | None, ...]:
    return tuple(wire_hash(view, (*vpath, c), salt, size) for c in range(ARITY))


def sorted_entries(view: QuadView, vpath: VPath) -> list[tuple[bytes, bytes]]:
    """Every (id, digest) under `vpath` in id order: what listing indices count in."""
    return sorted(view.entries(vpath))


def full_listing(view: QuadView, vpath: VPath, g: ReconGeometry, digests: bool) -> bytes:
    entries = view.entries(vpath)
    limit = MAX_V3_LISTING if g.version == V3 else MAX_LISTING
    if len(entries) > limit:
        raise DiffProtocolError(f"{len(entries)} ids under one path: raise the tree depth")
    return pack_listing([(i, salted(d, g.salt, g.digest_bytes) if digests else b"")
                         for i, d in entries], limit)


def short_id(item_id: bytes, salt: bytes) -> bytes:
    return salted(item_id, salt, SHORT_ID_BYTES)


def short_digest(digest: bytes, salt: bytes) -> bytes:
    return salted(digest, salt, SHORT_DIGEST_BYTES)


def short_listing(view: QuadView, vpath: VPath, g: ReconGeometry) -> bytes:
    return pack_short_listing([(short_id(i, g.salt), short_digest(d, g.salt))
                               for i, d in sorted_entries(view, vpath)])
