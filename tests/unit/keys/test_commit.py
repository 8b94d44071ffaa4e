"""The one commit path: a join writes only what changed, with counters, indexes, the conflict
marker and the Merkle leaf in the same batch; deletes stay deleted; observers see each commit."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from bench.keygen import generate_key
from crdt.vclock import VersionVector
from meshkp.errors import InvalidPeerRecord
from meshkp.keys.commit import CONFLICT_PREFIX
from meshkp.keys.ingest import record_terms
from meshkp.keys.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Prepared
from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind

from .helpers import LIMITS, certificate, commit_states, record, with_vv


def prepared(data: bytes) -> Prepared:
    """An encoded state prepared as a received one is (decoded, with its index terms)."""
    decoded = KeyRecord.decode(data)
    return Prepared.of(decoded, record_terms(decoded, LIMITS))


def test_merge_writes_only_changes_and_keeps_counters_and_indexes() -> None:
    store, index = MemoryStore(), MerkleIndex()
    first = commit_states(store, [record(1), record(2)], index, LIMITS)
    assert first.changed == [True, True] and store.counter("keys") == 2
    again = commit_states(store, [record(1)], index, LIMITS)
    assert again.changed == [False] and again.writes == []
    fp = certificate(1).fingerprint
    assert store.lookup(IndexKind.FINGERPRINT, fp, 5) == [fp]
    root = index.root_hex(store)
    # A delete that has seen n0's add: the key leaves every index and the live count.
    tomb = record(1).delete("n1", 5, "spam", "admin")
    commit_states(store, [tomb], index, LIMITS)
    assert store.lookup(IndexKind.FINGERPRINT, fp, 5) == []
    assert store.counter("keys") == 1 and store.counter(TOMBSTONES_COUNTER) == 1
    assert index.root_hex(store) != root
    assert list(store.iter_extra(CONFLICT_PREFIX)) == []


def test_a_stale_copy_does_not_resurrect_a_deleted_key() -> None:
    store, index = MemoryStore(), MerkleIndex()
    commit_states(store, [record(1).delete("n1", 5, "spam", "admin")], index, LIMITS)
    stale = commit_states(store, [record(1)], index, LIMITS)
    assert stale.changed == [False]
    assert KeyRecord.decode(store.get(certificate(1).fingerprint)).deleted


def test_an_add_concurrent_with_a_delete_is_a_conflict_marked_in_the_store() -> None:
    store, index = MemoryStore(), MerkleIndex()
    base = record(1, "n0")
    commit_states(store, [base.delete("n1", 5, "spam", "admin")], index, LIMITS)
    with_subkey = normalise(parse_packets(generate_key(1, seed=b"repl-test").data))
    concurrent = base.add(with_subkey, "n2")  # n2 had not seen the delete
    result = commit_states(store, [concurrent], index, LIMITS)
    stored = KeyRecord.decode(store.get(base.fingerprint))
    assert result.changed == [True] and stored.deleted and stored.conflict is not None
    assert stored.conflict.unseen_adds == {"n2": 1}
    assert [k for k, _ in store.iter_extra(CONFLICT_PREFIX)] == [CONFLICT_PREFIX + base.fingerprint]
    assert store.counter("keys") == 0


def test_merge_is_order_independent() -> None:
    a, b = with_vv(record(3), n0=1), with_vv(record(3), n1=1)
    bare = generate_key(3, seed=b"repl-test", with_subkey=False).data
    b = dataclasses.replace(b, certificate=normalise(parse_packets(bare)))
    s1, s2, index = MemoryStore(), MemoryStore(), MerkleIndex()
    commit_states(s1, [a, b], index, LIMITS)
    commit_states(s2, [b], index, LIMITS)
    commit_states(s2, [a], index, LIMITS)
    assert s1.get(a.fingerprint) == s2.get(a.fingerprint)
    assert index.root_hex(s1) == index.root_hex(s2)


def _mpi(n: int) -> bytes:
    return struct.pack(">H", n.bit_length()) + n.to_bytes((n.bit_length() + 7) // 8, "big")


def _v3_record(created: int, node: str) -> bytes:
    """A v3 RSA key: its fingerprint (MD5 of n and e) does not cover the creation time."""
    body = bytes([3]) + struct.pack(">IHB", created, 0, 1) + _mpi((1 << 1023) | 12345) + _mpi(65537)
    fingerprint = parse_public_key(body).fingerprint
    cert = Certificate(fingerprint, Component(Packet(Tag.PUBLIC_KEY, body)))
    return KeyRecord(fingerprint, cert, VersionVector({node: 1})).encode()


def test_a_v3_key_with_another_primary_packet_is_refused_and_nothing_changes() -> None:
    store, index = MemoryStore(), MerkleIndex()
    commit_states(store, [prepared(_v3_record(1, "a"))], index, LIMITS)
    fingerprint = KeyRecord.decode(_v3_record(1, "a")).fingerprint
    before, root = store.get(fingerprint), index.root_hex(store)
    other = prepared(_v3_record(2, "b"))  # same fingerprint, other packet
    with pytest.raises(InvalidPeerRecord, match="primary key packet"):
        commit_states(store, [prepared(record(5).encode()), other], index, LIMITS)
    assert store.get(fingerprint) == before and index.root_hex(store) == root
    assert store.get(certificate(5).fingerprint) is None
