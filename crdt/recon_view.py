"""A fanout-4 view of a stored Merkle tree, with salted short hashes (for crdt.recon).

The stored tree (crdt.merkle) has fanout 16: descending one differing node there sends 16
hashes to find, mostly, one differing child. Per bit of the path that is 4 hashes; a fanout-4
tree pays 2 per bit, so the view splits each stored level into two virtual ones. A virtual
path is a string of base-4 digits, the 2-bit groups of SHA-256(id): the first ones name the
stored node or bucket (crdt.merkle.bucket_of reads the same bits), the next ones a group of a
node's children (hashed here from the stored child hashes), and those past the buckets a
sub-bucket (the entries whose SHA-256(id) goes on with those bits, hashed from the bucket's
entries). So a bucket of 15 ids (1,000,000 keys in 65,536 buckets) is split further instead
of being listed whole. Nothing is written: every virtual hash is computed from stored ones.

Wire hashes are keyed BLAKE2b of the full 32-byte hash, truncated, with a salt the
initiator picks per session: a collision of short hashes hides a difference for one round at
most (2**-(8*hash_bytes) per differing subtree), and nobody can grind keys for one ahead of
time since they cannot know the salt.
"""

from __future__ import annotations

import hashlib

from crdt.errors import CrdtConfigError
from crdt.merkle import EMPTY_HASH, MerkleTree, Path, Slot, encode_bucket

VPath = tuple[int, ...]  # base-4 digits
DIGIT_BITS = 2
ARITY = 4
# Virtual levels below the stored buckets: 12 more bits of SHA-256(id), 4,096 sub-buckets
# per bucket, so ids one bucket holds (15 at 10**6 keys, 153 at 10**7) end up alone.
EXTRA_LEVELS = 6
_GROUP_TAG = b"G"
_SUB_TAG = b"S"


def digits_per_level(fanout: int) -> int:
    """Virtual digits per stored level; CrdtConfigError if the fanout is not a power of 4."""
    bits = fanout.bit_length() - 1
    if fanout != 1 << bits or bits % DIGIT_BITS or bits == 0:
        raise CrdtConfigError(f"fanout={fanout}: the fanout-4 view needs a power of 4")
    return bits // DIGIT_BITS


def max_vdepth(fanout: int, depth: int) -> int:
    """The deepest virtual level: the stored buckets, then EXTRA_LEVELS sub-bucket levels."""
    return digits_per_level(fanout) * depth + EXTRA_LEVELS


def vpath_of(item_id: bytes, length: int) -> VPath:
    """The first `length` base-4 digits of SHA-256(item_id)."""
    value = int.from_bytes(hashlib.sha256(item_id).digest(), "big")
    return tuple((value >> (256 - DIGIT_BITS * (i + 1))) & 3 for i in range(length))


def salted(full: bytes, salt: bytes, size: int) -> bytes:
    """The wire form of a 32-byte hash or digest: keyed BLAKE2b, `size` bytes."""
    return hashlib.blake2b(full, key=salt, digest_size=size).digest()


class QuadView:
    """Hashes, sizes and entries of virtual paths of one tree; caches what it reads.

    Build one per message (responder) or per session (initiator): the cache assumes the tree
    does not change under it, and a change mid-session only makes that round find less.
    """

    def __init__(self, tree: MerkleTree) -> None:
        self.tree = tree
        self.k = digits_per_level(tree.config.fanout)
        self.depth = tree.config.depth
        self.stored_digits = self.k * self.depth
        self.max_v = self.stored_digits + EXTRA_LEVELS
        self._nodes: dict[Path, tuple[Slot, ...]] = {}
        self._subs: dict[Path, list[tuple[VPath, bytes, bytes]]] = {}
        self._slots: dict[VPath, Slot] = {}

    # -- stored reads, cached ----------------------------------------------------------------
    def _children(self, path: Path) -> tuple[Slot, ...]:
        found = self._nodes.get(path)
        if found is None:
            found = self._nodes[path] = self.tree.children(path)
        return found

    def _stored(self, vpath: VPath) -> tuple[Path, VPath]:
        """The stored path the first digits of `vpath` name, and the digits left over."""
        k = self.k
        whole = min(len(vpath) // k, self.depth)
        path = tuple(
            sum(d << (DIGIT_BITS * (k - 1 - j)) for j, d in enumerate(vpath[i * k:(i + 1) * k]))
            for i in range(whole)
        )
        return path, vpath[whole * k:]

    def _bucket_entries(self, bucket: Path) -> list[tuple[VPath, bytes, bytes]]:
        """A bucket's (sub-bucket digits, id, digest), sorted by id."""
        found = self._subs.get(bucket)
        if found is None:
            found = [
                (vpath_of(item_id, self.max_v)[self.stored_digits:], item_id, digest)
                for item_id, digest in sorted(self.tree.bucket(bucket).items())
            ]
            self._subs[bucket] = found
        return found

    def _group(self, rest: VPath) -> tuple[int, int]:
        """(first child, children) of a stored node that the digits `rest` (< k) name."""
        start = sum(d << (DIGIT_BITS * (self.k - 1 - j)) for j, d in enumerate(rest))
        return start, ARITY ** (self.k - len(rest))

    # -- the view ----------------------------------------------------------------------------
    def slot(self, vpath: VPath) -> Slot:
        """(full hash, ids) of the virtual subtree at `vpath`."""
        found = self._slots.get(vpath)
        if found is None:
            found = self._slots[vpath] = self._compute(vpath)
        return found

    def _compute(self, vpath: VPath) -> Slot:
        path, rest = self._stored(vpath)
        if len(path) == self.depth and rest:
            subset = [(i, d) for sub, i, d in self._bucket_entries(path)
                      if sub[:len(rest)] == rest]
            if not subset:
                return Slot(EMPTY_HASH, 0)
            encoded = encode_bucket(dict(subset))
            return Slot(hashlib.sha256(_SUB_TAG + encoded).digest(), len(subset))
        if not rest:
            return self.tree.slot(()) if not path else self._children(path[:-1])[path[-1]]
        start, span = self._group(rest)
        group = self._children(path)[start:start + span]
        size = sum(s.size for s in group)
        if not size:
            return Slot(EMPTY_HASH, 0)
        tag = _GROUP_TAG + bytes([len(rest)])
        return Slot(hashlib.sha256(tag + b"".join(s.hash for s in group)).digest(), size)

    def children(self, vpath: VPath) -> tuple[Slot, ...]:
        """The 4 child slots of `vpath` (which must be above max_v)."""
        return tuple(self.slot((*vpath, c)) for c in range(ARITY))

    def entries(self, vpath: VPath) -> list[tuple[bytes, bytes]]:
        """Every (id, digest) under `vpath`."""
        path, rest = self._stored(vpath)
        if len(path) == self.depth:
            return [(i, d) for sub, i, d in self._bucket_entries(path) if sub[:len(rest)] == rest]
        if not rest:
            return self.tree.entries(path)
        start, span = self._group(rest)
        found: list[tuple[bytes, bytes]] = []
        for index, child in enumerate(self._children(path)[start:start + span]):
            if child.size:
                found.extend(self.tree.entries((*path, start + index)))
        return found
