"""Edge cases found in review: peer bytes that must be refused, and quorum retries."""

from __future__ import annotations

import struct

import msgpack
import pytest

from crdt.vclock import VersionVector
from meshkp.errors import InvalidPeerRecord
from meshkp.http.cluster_sync import _CHANGED, collect_changes
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.openpgp.certificate import Certificate, Component
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.record import KeyRecord
from meshkp.replication.apply import merge_into_store
from meshkp.replication.merkle_index import MerkleIndex
from meshkp.replication.prepare import prepare
from meshkp.replication.validate import parse_peer_record
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

from .helpers import LIMITS, certificate, record


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
    merge_into_store(store, [prepare(_v3_record(1, "a"), LIMITS, False)], index, LIMITS)
    fingerprint = KeyRecord.decode(_v3_record(1, "a")).fingerprint
    before, root = store.get(fingerprint), index.root_hex(store)
    other = prepare(_v3_record(2, "b"), LIMITS, False)  # same fingerprint, other packet
    with pytest.raises(InvalidPeerRecord, match="primary key packet"):
        merge_into_store(store, [prepare(record(5).encode(), LIMITS, False), other], index, LIMITS)
    assert store.get(fingerprint) == before and index.root_hex(store) == root
    assert store.get(certificate(5).fingerprint) is None


def _with_tombstone_hlc(hlc: object) -> bytes:
    fmt, fp, cert, vv, _ = msgpack.unpackb(record(1).delete("n1", 7, "r", "a").encode())
    tomb = [vv, hlc, "r", "a"]
    return msgpack.packb([fmt, fp, cert, vv, tomb], use_bin_type=True)


def test_a_boolean_tombstone_stamp_is_refused() -> None:
    # True == 1 in Python but encodes differently: merges of such tombstones would depend on
    # the order they arrive in, and replicas would store different bytes for one state.
    parse_peer_record(_with_tombstone_hlc(1), LIMITS, verify=False)
    with pytest.raises(InvalidPeerRecord):
        parse_peer_record(_with_tombstone_hlc(True), LIMITS, verify=False)


def test_a_counter_that_cannot_be_incremented_is_refused() -> None:
    # A local update increments this node's counter; at 2**64-1 the record could never be
    # encoded again, and every later upload or delete of the key would fail.
    fmt, fp, cert, _vv, tomb = msgpack.unpackb(record(1).encode())
    huge = msgpack.packb([fmt, fp, cert, {"n0": 2**64 - 1}, tomb], use_bin_type=True)
    with pytest.raises(InvalidPeerRecord, match="counter"):
        parse_peer_record(huge, LIMITS, verify=False)


async def test_a_retried_upload_still_waits_for_the_consistency_level() -> None:
    # A quorum upload that timed out (503) and is retried finds the key unchanged here: the
    # retry must still be pushed and acknowledged, not answered 200 at once.
    from pathlib import Path

    keytext = (Path(__file__).resolve().parents[2] / "fixtures" / "alice_unsigned.asc").read_bytes()
    store = AsyncStore(MemoryStore())
    parser = KeyParser(LIMITS, process_threshold=1 << 30)
    service = KeyService(store, "n1", LIMITS, parser)
    service.write_listeners.append(collect_changes)
    try:
        collected: list[list[bytes]] = []
        for _ in range(2):
            changed: list[bytes] = []
            token = _CHANGED.set(changed)
            try:
                await service.add(keytext)
            finally:
                _CHANGED.reset(token)
            collected.append(changed)
        assert collected[0] and collected[1] == collected[0]
    finally:
        parser.close()
        await store.close()
