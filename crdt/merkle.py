"""A Merkle tree over a map id -> digest, for anti-entropy (DESIGN.md "Replication").

Geometry: `depth` levels of inner nodes with `fanout` children each, above fanout**depth leaf
buckets. An id lives in the bucket named by the first depth*log2(fanout) bits of SHA-256(id)
(`bucket_of`), so buckets fill evenly even if ids do not. A bucket's hash covers its sorted
(id, digest) pairs; an inner node stores its children's (hash, size) slots and hashes them.
Empty subtrees have the all-zero hash and are not stored.

Updates are incremental: changing one id rewrites its bucket and the `depth` nodes above it,
nothing else. The tree reads through a `MerkleStorage` (just `get`) and never writes: every
update returns the (key, value-or-None) writes to apply, so meshkp can put them into the same
LevelDB WriteBatch as the record they describe. A `MerkleBatch` stages many updates and
rewrites each touched node once (bulk loads cost one pass, not n * depth).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

import msgpack

from crdt.errors import CrdtConfigError, MerkleError

HASH_BYTES = 32  # SHA-256
EMPTY_HASH = bytes(HASH_BYTES)
# An id is a fingerprint (20 bytes v4, 32 bytes v6) and a digest a SHA-256 state hash; longer
# values are a caller bug, and would let one bucket grow without bound.
MAX_ID_BYTES = 64
MAX_DIGEST_BYTES = 64
_COUNT_BYTES = 4  # a subtree's id count, uint32 big-endian: up to 4 billion ids
_SLOT_BYTES = HASH_BYTES + _COUNT_BYTES
_MAX_COUNT = 2 ** (8 * _COUNT_BYTES) - 1
_LEAF_TAG = b"L"  # domain separation: a bucket's bytes can never hash like a node's
_NODE_TAG = b"N"

Path = tuple[int, ...]
Write = tuple[bytes, bytes | None]  # (storage key, new value) -- None deletes the key


@dataclass(frozen=True, slots=True)
class MerkleConfig:
    """Tree geometry; both sides of a diff must use the same one."""

    # Children per inner node, a power of two in [2, 256]. A differing node costs `fanout`
    # hashes to descend, and the tree has log_fanout(buckets) levels: 16 balances the two.
    fanout: int = 16
    # Levels of inner nodes above the buckets: fanout**depth buckets. Pick it so that
    # n / fanout**depth stays near 1-10 ids per bucket at the expected key count, since a
    # differing bucket is sent whole. 16**4 = 65,536 buckets, 1.5 ids each at 100,000 keys.
    depth: int = 4

    def validate(self) -> None:
        """Raise CrdtConfigError if the geometry is unusable."""
        if not isinstance(self.fanout, int) or self.fanout not in _POWERS_OF_TWO:
            raise CrdtConfigError(f"fanout={self.fanout!r}: must be a power of two in [2, 256]")
        if not isinstance(self.depth, int) or not 1 <= self.depth <= 16:
            raise CrdtConfigError(f"depth={self.depth!r}: must be an int in [1, 16]")

    @property
    def buckets(self) -> int:
        """Number of leaf buckets, fanout**depth."""
        return int(self.fanout**self.depth)


_POWERS_OF_TWO = frozenset(2**k for k in range(1, 9))


class Slot(NamedTuple):
    """A subtree as its parent sees it: hash and number of ids below."""

    hash: bytes
    size: int  # ids in the subtree


EMPTY_SLOT = Slot(EMPTY_HASH, 0)


def bucket_of(item_id: bytes, fanout: int, depth: int) -> Path:
    """The bucket path of `item_id`: the first depth*log2(fanout) bits of SHA-256(id)."""
    bits = fanout.bit_length() - 1
    total = bits * depth
    width = (total + 7) // 8
    prefix = int.from_bytes(hashlib.sha256(item_id).digest()[:width], "big") >> (8 * width - total)
    mask = fanout - 1
    return tuple((prefix >> (bits * (depth - 1 - level))) & mask for level in range(depth))


def node_key(path: Path) -> bytes:
    """Storage key of the inner node at `path` (b"n" + one byte per level)."""
    return b"n" + bytes(path)


def bucket_key(path: Path) -> bytes:
    """Storage key of the leaf bucket at `path` (b"b" + one byte per level)."""
    return b"b" + bytes(path)


def encode_bucket(entries: dict[bytes, bytes]) -> bytes:
    """A bucket's canonical bytes: msgpack [id, digest, id, digest, ...] sorted by id."""
    flat: list[bytes] = []
    for item_id in sorted(entries):
        flat.append(item_id)
        flat.append(entries[item_id])
    data: bytes = msgpack.packb(flat, use_bin_type=True)
    return data


def leaf_slot(encoded_bucket: bytes, count: int) -> Slot:
    """The slot of a bucket from its canonical bytes."""
    if count == 0:
        return EMPTY_SLOT
    return Slot(hashlib.sha256(_LEAF_TAG + encoded_bucket).digest(), count)


def encode_node(slots: Iterable[Slot]) -> bytes:
    """An inner node's bytes: per child, 32-byte hash then uint32 count."""
    parts: list[bytes] = []
    for slot in slots:
        parts.append(slot.hash)
        parts.append(slot.size.to_bytes(_COUNT_BYTES, "big"))
    return b"".join(parts)


def node_slot(encoded_node: bytes, count: int) -> Slot:
    """The slot of an inner node from its bytes and total count."""
    if count == 0:
        return EMPTY_SLOT
    return Slot(hashlib.sha256(_NODE_TAG + encoded_node).digest(), count)


class MerkleStorage(Protocol):
    """Where nodes and buckets live; the tree only reads. Apply its writes in order."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        ...


class MemoryMerkleStorage:
    """A dict-backed MerkleStorage for tests, simulations and the in-memory store."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        return self.data.get(key)

    def apply(self, writes: Iterable[Write]) -> None:
        """Apply writes in order (None deletes)."""
        for key, value in writes:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def copy(self) -> MemoryMerkleStorage:
        """An independent copy (values are immutable bytes)."""
        return MemoryMerkleStorage(self.data)


def _check_id(item_id: bytes) -> None:
    if not isinstance(item_id, bytes) or not 1 <= len(item_id) <= MAX_ID_BYTES:
        raise MerkleError(f"id must be 1..{MAX_ID_BYTES} bytes, got {item_id!r:.80}")


def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or not 1 <= len(digest) <= MAX_DIGEST_BYTES:
        raise MerkleError(f"digest must be 1..{MAX_DIGEST_BYTES} bytes, got {digest!r:.80}")


class MerkleTree:
    """Read access to a tree in `storage`; updates are staged and returned as writes."""

    def __init__(self, storage: MerkleStorage, config: MerkleConfig | None = None) -> None:
        self.config = config or MerkleConfig()
        self.config.validate()
        self.storage = storage

    # -- reading ---------------------------------------------------------------------------
    def _check_path(self, path: Path, *, leaf: bool) -> None:
        depth, fanout = self.config.depth, self.config.fanout
        ok_len = len(path) == depth if leaf else len(path) < depth
        if not ok_len or any(not 0 <= digit < fanout for digit in path):
            kind = "bucket" if leaf else "inner node"
            raise MerkleError(f"{path!r} is not a valid {kind} path for {self.config}")

    def children(self, path: Path = ()) -> tuple[Slot, ...]:
        """The `fanout` child slots of the inner node at `path` (all empty if absent)."""
        self._check_path(path, leaf=False)
        return self._decode_node(path, self.storage.get(node_key(path)))

    def _decode_node(self, path: Path, raw: bytes | None) -> tuple[Slot, ...]:
        fanout = self.config.fanout
        if raw is None:
            return (EMPTY_SLOT,) * fanout
        if len(raw) != fanout * _SLOT_BYTES:
            raise MerkleError(f"corrupt Merkle node at {path!r}: {len(raw)} bytes")
        return tuple(
            Slot(
                raw[at : at + HASH_BYTES],
                int.from_bytes(raw[at + HASH_BYTES : at + _SLOT_BYTES], "big"),
            )
            for at in range(0, fanout * _SLOT_BYTES, _SLOT_BYTES)
        )

    def slot(self, path: Path = ()) -> Slot:
        """The slot (hash, size) of the subtree at `path`; () is the root."""
        if not path:
            raw = self.storage.get(node_key(()))
            if raw is None:
                return EMPTY_SLOT
            return node_slot(raw, sum(slot.size for slot in self._decode_node((), raw)))
        self._check_path(path, leaf=len(path) == self.config.depth)
        return self.children(path[:-1])[path[-1]]

    def root(self) -> bytes:
        """The root hash (all zero for an empty tree)."""
        return self.slot(()).hash

    def __len__(self) -> int:
        return self.slot(()).size

    def bucket(self, path: Path) -> dict[bytes, bytes]:
        """The (id -> digest) entries of the bucket at `path`."""
        self._check_path(path, leaf=True)
        raw = self.storage.get(bucket_key(path))
        return {} if raw is None else self._decode_bucket(path, raw)

    @staticmethod
    def _decode_bucket(path: Path, raw: bytes) -> dict[bytes, bytes]:
        try:
            flat = msgpack.unpackb(raw, raw=False, use_list=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise MerkleError(f"corrupt Merkle bucket at {path!r}: {exc}") from exc
        if not isinstance(flat, list) or len(flat) % 2:
            raise MerkleError(f"corrupt Merkle bucket at {path!r}: not an id/digest list")
        return dict(zip(flat[0::2], flat[1::2], strict=True))

    def entries(self, path: Path = ()) -> list[tuple[bytes, bytes]]:
        """All (id, digest) pairs under `path`, by bucket then id."""
        depth = self.config.depth
        if len(path) == depth:
            return sorted(self.bucket(path).items())
        found: list[tuple[bytes, bytes]] = []
        for index, child in enumerate(self.children(path)):
            if child.size:
                found.extend(self.entries((*path, index)))
        return found

    def bucket_of(self, item_id: bytes) -> Path:
        """The bucket path of `item_id` in this geometry."""
        return bucket_of(item_id, self.config.fanout, self.config.depth)

    def get(self, item_id: bytes) -> bytes | None:
        """The digest stored for `item_id`, or None."""
        _check_id(item_id)
        return self.bucket(self.bucket_of(item_id)).get(item_id)

    # -- staging updates -------------------------------------------------------------------
    def batch(self) -> MerkleBatch:
        """A batch of puts and deletes whose writes are computed once, at `writes()`."""
        return MerkleBatch(self)

    def update(self, item_id: bytes, digest: bytes) -> list[Write]:
        """The writes that set `item_id` to `digest`: one bucket and `depth` nodes, or none."""
        batch = self.batch()
        batch.put(item_id, digest)
        return batch.writes()

    def delete(self, item_id: bytes) -> list[Write]:
        """The writes that remove `item_id` (none if absent)."""
        batch = self.batch()
        batch.delete(item_id)
        return batch.writes()


class MerkleBatch:
    """Staged updates over a tree. Apply the returned writes before reading the tree again.

    The batch reads nodes from storage when `writes()` runs, so updates must be serialized:
    one writer computes and applies its writes before the next batch reads (in meshkp, under
    the store's write lock, in the same WriteBatch as the records they describe).
    """

    def __init__(self, tree: MerkleTree) -> None:
        self._tree = tree
        self._buckets: dict[Path, dict[bytes, bytes]] = {}
        self._dirty: set[Path] = set()
        self._done = False

    def _bucket(self, item_id: bytes) -> tuple[Path, dict[bytes, bytes]]:
        if self._done:
            raise MerkleError("this batch already produced its writes; start a new batch")
        path = self._tree.bucket_of(item_id)
        entries = self._buckets.get(path)
        if entries is None:
            raw = self._tree.storage.get(bucket_key(path))  # bucket_of's path: no check
            entries = {} if raw is None else self._tree._decode_bucket(path, raw)
            self._buckets[path] = entries
        return path, entries

    def put(self, item_id: bytes, digest: bytes) -> None:
        """Stage id -> digest."""
        _check_id(item_id)
        _check_digest(digest)
        path, entries = self._bucket(item_id)
        if entries.get(item_id) != digest:
            entries[item_id] = digest
            self._dirty.add(path)

    def delete(self, item_id: bytes) -> None:
        """Stage the removal of `item_id`."""
        _check_id(item_id)
        path, entries = self._bucket(item_id)
        if entries.pop(item_id, None) is not None:
            self._dirty.add(path)

    def writes(self) -> list[Write]:
        """The writes for every staged change, each touched node rewritten once; ends the batch."""
        if self._done:
            raise MerkleError("writes() was already called on this batch")
        self._done = True
        tree = self._tree
        writes: list[Write] = []
        changed: dict[Path, dict[int, Slot]] = {}
        for path in sorted(self._dirty):
            entries = self._buckets[path]
            encoded = encode_bucket(entries)
            writes.append((bucket_key(path), encoded if entries else None))
            changed.setdefault(path[:-1], {})[path[-1]] = leaf_slot(encoded, len(entries))
        fanout = tree.config.fanout
        counts = _counts_struct(fanout)
        get = tree.storage.get
        while changed:
            above: dict[Path, dict[int, Slot]] = {}
            for path in sorted(changed):
                # The node's bytes are patched in place rather than decoded into Slots and
                # encoded again: this loop runs for every touched node of every write batch
                # (a bootstrap rewrites most of the tree's nodes each batch), and the bytes
                # are exactly encode_node() of the updated slots. `path` is a prefix of a
                # bucket path that bucket_of computed, so it needs no _check_path.
                raw = get(node_key(path))
                if raw is not None and len(raw) != fanout * _SLOT_BYTES:
                    raise MerkleError(f"corrupt Merkle node at {path!r}: {len(raw)} bytes")
                node = bytearray(raw if raw is not None else encode_node((EMPTY_SLOT,) * fanout))
                for index, slot in changed[path].items():
                    at = index * _SLOT_BYTES
                    node[at:at + _SLOT_BYTES] = slot.hash + slot.size.to_bytes(_COUNT_BYTES, "big")
                count = sum(counts.unpack(node))
                if count > _MAX_COUNT:
                    raise MerkleError(f"subtree {path!r} would hold {count} ids, over 2**32-1")
                encoded = bytes(node)
                writes.append((node_key(path), encoded if count else None))
                if path:
                    above.setdefault(path[:-1], {})[path[-1]] = node_slot(encoded, count)
            changed = above
        return writes


@lru_cache(maxsize=8)
def _counts_struct(fanout: int) -> struct.Struct:
    """Reads the `fanout` child counts of a node's bytes (compiled once per geometry)."""
    return struct.Struct(">" + f"{HASH_BYTES}xI" * fanout)


def build_nodes(entries: Iterable[tuple[bytes, bytes]], config: MerkleConfig) -> dict[bytes, bytes]:
    """Every stored node and bucket of the tree holding `entries` (id, digest), built bottom-up.

    The same bytes as staging every entry in one MerkleBatch over an empty storage and
    applying its writes, at about half the CPU: a rebuild or a bootstrap of 100,000 ids needs
    no per-id bucket lookups, and each node is encoded once, from its children's slots.
    A later id of the same value replaces an earlier one, as a batch's put does.
    """
    config.validate()
    fanout, depth = config.fanout, config.depth
    bits = fanout.bit_length() - 1
    total = bits * depth
    width = (total + 7) // 8
    shift = 8 * width - total
    mask = fanout - 1
    sha256 = hashlib.sha256
    buckets: dict[int, dict[bytes, bytes]] = {}
    for item_id, digest in entries:
        _check_id(item_id)
        _check_digest(digest)
        prefix = int.from_bytes(sha256(item_id).digest()[:width], "big") >> shift
        bucket = buckets.get(prefix)
        if bucket is None:
            buckets[prefix] = bucket = {}
        bucket[item_id] = digest

    def path_of(prefix: int, levels: int) -> Path:
        return tuple((prefix >> (bits * (levels - 1 - level))) & mask for level in range(levels))

    nodes: dict[bytes, bytes] = {}
    slots: dict[int, Slot] = {}
    for prefix, bucket in buckets.items():
        encoded = encode_bucket(bucket)
        nodes[bucket_key(path_of(prefix, depth))] = encoded
        slots[prefix] = leaf_slot(encoded, len(bucket))
    for levels in range(depth - 1, -1, -1):
        children: dict[int, list[Slot]] = {}
        for prefix, slot in slots.items():
            row = children.get(prefix >> bits)
            if row is None:
                children[prefix >> bits] = row = [EMPTY_SLOT] * fanout
            row[prefix & mask] = slot
        slots = {}
        for prefix, row in children.items():
            count = sum(slot.size for slot in row)
            if count > _MAX_COUNT:
                raise MerkleError(f"subtree {path_of(prefix, levels)!r} would hold {count} ids")
            encoded = encode_node(row)
            nodes[node_key(path_of(prefix, levels))] = encoded
            slots[prefix] = node_slot(encoded, count)
    return nodes
