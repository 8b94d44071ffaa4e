"""A peer's record is validated before it is stored; merging writes only what changed."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from bench.keygen import generate_key
from meshkp.errors import InvalidPeerRecord
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Component
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Packet
from meshkp.record import KeyRecord
from meshkp.replication.apply import CONFLICT_PREFIX, merge_into_store
from meshkp.replication.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.replication.validate import parse_peer_record
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind

from .helpers import LIMITS, certificate, record, with_vv


def test_a_valid_record_passes_with_and_without_verification() -> None:
    data = record(1).encode()
    assert parse_peer_record(data, LIMITS, verify=True) == record(1)
    assert parse_peer_record(data, LIMITS, verify=False) == record(1)


@pytest.mark.parametrize("data", [b"", b"\x00garbage", msgpack.packb([1, b"x", None, {}, None]),
                                  msgpack.packb([9, bytes(20), None, {"a": 1}, None]),
                                  msgpack.packb([1, bytes(20), b"\xff\xff", {"a": 1}, None])])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidPeerRecord):
        parse_peer_record(data, LIMITS, verify=False)


def test_a_record_filed_under_another_fingerprint_is_rejected() -> None:
    forged = dataclasses.replace(record(1), fingerprint=certificate(2).fingerprint)
    with pytest.raises(InvalidPeerRecord, match="filed under"):
        parse_peer_record(forged.encode(), LIMITS, verify=False)


def _forged_uid_record() -> KeyRecord:
    """Key 1 with an extra user ID whose 'self-signature' is key 1's real one re-used (invalid)."""
    cert = certificate(1)
    (uid_body, comp), = cert.user_ids.items()
    fake_uid = Packet(13, b"Mallory <mallory@example.org>")
    uids = dict(cert.user_ids)
    uids[fake_uid.body] = Component(fake_uid, comp.signatures)
    return dataclasses.replace(record(1), certificate=dataclasses.replace(cert, user_ids=uids))


def test_a_forged_self_signature_is_rejected_when_verifying() -> None:
    data = _forged_uid_record().encode()
    with pytest.raises(InvalidPeerRecord, match="normal form"):
        parse_peer_record(data, LIMITS, verify=True)
    parse_peer_record(data, LIMITS, verify=False)  # structurally fine: only verification sees it


def test_limits_bound_what_a_peer_can_store() -> None:
    small = dataclasses.replace(Limits(), uid_bytes=10)
    with pytest.raises(InvalidPeerRecord, match="uid_bytes"):
        parse_peer_record(record(1).encode(), small, verify=False)
    tiny = dataclasses.replace(Limits(), key_bytes=100, packet_bytes=100, upload_bytes=100)
    with pytest.raises(InvalidPeerRecord):
        parse_peer_record(record(1).encode(), tiny, verify=False)


def test_merge_writes_only_changes_and_keeps_counters_and_indexes() -> None:
    store, index = MemoryStore(), MerkleIndex()
    first = merge_into_store(store, [record(1), record(2)], index, LIMITS)
    assert first.changed == [True, True] and store.counter("keys") == 2
    again = merge_into_store(store, [record(1)], index, LIMITS)
    assert again.changed == [False] and again.writes == []
    fp = certificate(1).fingerprint
    assert store.lookup(IndexKind.FINGERPRINT, fp, 5) == [fp]
    root = index.root_hex(store)
    # A delete that has seen n0's add: the key leaves every index and the live count.
    tomb = record(1).delete("n1", 5, "spam", "admin")
    merge_into_store(store, [tomb], index, LIMITS)
    assert store.lookup(IndexKind.FINGERPRINT, fp, 5) == []
    assert store.counter("keys") == 1 and store.counter(TOMBSTONES_COUNTER) == 1
    assert index.root_hex(store) != root
    assert list(store.iter_extra(CONFLICT_PREFIX)) == []


def test_a_stale_copy_does_not_resurrect_a_deleted_key() -> None:
    store, index = MemoryStore(), MerkleIndex()
    merge_into_store(store, [record(1).delete("n1", 5, "spam", "admin")], index, LIMITS)
    stale = merge_into_store(store, [record(1)], index, LIMITS)
    assert stale.changed == [False]
    assert KeyRecord.decode(store.get(certificate(1).fingerprint)).deleted


def test_an_add_concurrent_with_a_delete_is_a_conflict_marked_in_the_store() -> None:
    store, index = MemoryStore(), MerkleIndex()
    base = record(1, "n0")
    merge_into_store(store, [base.delete("n1", 5, "spam", "admin")], index, LIMITS)
    with_subkey = normalise(parse_packets(generate_key(1, seed=b"repl-test").data))
    concurrent = base.add(with_subkey, "n2")  # n2 had not seen the delete
    result = merge_into_store(store, [concurrent], index, LIMITS)
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
    merge_into_store(s1, [a, b], index, LIMITS)
    merge_into_store(s2, [b], index, LIMITS)
    merge_into_store(s2, [a], index, LIMITS)
    assert s1.get(a.fingerprint) == s2.get(a.fingerprint)
    assert index.root_hex(s1) == index.root_hex(s2)
