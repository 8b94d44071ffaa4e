"""A peer's record is validated before it is stored: what POST /pks/add would refuse, and
bytes that would make replicas disagree or break later updates, are refused."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.record import KeyRecord
from meshkp.limits import Limits
from meshkp.net.identity import NodeIdentity
from meshkp.openpgp.certificate import Component
from meshkp.openpgp.packet import Packet
from meshkp.replication.validate import parse_peer_record

from .helpers import LIMITS, certificate, record


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


def _with_tombstone_hlc(hlc: object) -> bytes:
    signed = record(1).delete("n1", 1, "r", "a", NodeIdentity.generate("n1"))
    fmt, fp, cert, vv, tomb = msgpack.unpackb(signed.encode())
    tomb[1] = hlc  # the proof signed 1
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
