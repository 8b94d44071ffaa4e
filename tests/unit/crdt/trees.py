"""A Merkle tree over in-memory storage, filled from id -> digest (the diff tests' fixture)."""

from __future__ import annotations

from crdt.merkle import MemoryMerkleStorage, MerkleConfig, MerkleTree


def tree_of(items: dict[bytes, bytes], config: MerkleConfig | None = None) -> MerkleTree:
    storage = MemoryMerkleStorage()
    tree = MerkleTree(storage, config)
    batch = tree.batch()
    for item_id, digest in items.items():
        batch.put(item_id, digest)
    storage.apply(batch.writes())
    return tree
