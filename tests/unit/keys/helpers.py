"""Generated keys as key records, shared by the key-layer and replication tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache

from bench.keygen import generate_key
from crdt.vclock import VersionVector
from meshkp.keys.commit import PULLED, Committer, MergeResult, joining
from meshkp.keys.merkle_index import MerkleIndex
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import KeyState
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.store.protocol import Store

LIMITS = Limits()


@lru_cache(maxsize=4096)
def certificate(index: int, seed: bytes = b"repl-test") -> Certificate:
    """The normalised certificate of generated key `index`."""
    return normalise(parse_packets(generate_key(index, seed=seed).data), LIMITS)


def record(index: int, node_id: str = "n0") -> KeyRecord:
    return KeyRecord.new(certificate(index), node_id)


def with_vv(rec: KeyRecord, **entries: int) -> KeyRecord:
    return dataclasses.replace(rec, vv=VersionVector(entries))


def commit_states(
    store: Store, states: Sequence[KeyState], merkle: MerkleIndex, limits: Limits = LIMITS,
    sync: bool = True,
) -> MergeResult:
    """Commit the join of `states` into `store` as a received batch is (the one commit path)."""
    return Committer(limits, merkle).apply(store, joining(states), PULLED, sync=sync)
