"""snapshot_check: a copied record is refused with InvalidPeerRecord, whatever its bytes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.errors import InvalidPeerRecord
from meshkp.net.identity import NodeIdentity
from meshkp.replication.snapshot_check import check_snapshot_record

from .helpers import LIMITS, certificate, record
from .test_forged_push import _moved_proof


def test_a_sound_record_passes_with_its_flags() -> None:
    data = record(4).encode()
    assert check_snapshot_record(data, LIMITS) == (certificate(4).fingerprint, True, False)


@pytest.mark.parametrize("fields, why", [
    ([1, b"x" * 20, None, {"n0": 1}, None], "neither certificate nor tombstone"),
    ([2, b"x" * 20, b"\x99", {"n0": 1}, None], "format"),
    ([1, b"x" * 19, b"\x99", {"n0": 1}, None], "fingerprint of 19"),
    ([1, b"x" * 20, 5, {"n0": 1}, None], "certificate must be bytes"),
    ([1, b"x" * 20, b"\x99", {"n0": 1}, [1, 2]], "tombstone"),
])
def test_malformed_fields_are_refused_naming_why(fields: list[object], why: str) -> None:
    with pytest.raises(InvalidPeerRecord, match=why):
        check_snapshot_record(msgpack.packb(fields), LIMITS)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_of_a_record_is_either_sound_or_refused(data: st.DataObject) -> None:
    raw = bytearray(record(5).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[at:at + data.draw(st.integers(1, 8))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            raw = bytearray(b"\x00")
    try:
        fingerprint, _live, _deleted = check_snapshot_record(bytes(raw), LIMITS)
    except InvalidPeerRecord:
        return
    assert fingerprint == msgpack.unpackb(bytes(raw))[1]  # what passed is filed under its key


def test_a_copied_tombstone_must_carry_a_delete_proof_as_a_pushed_one_does() -> None:
    """Finding 10 by the back door: a snapshot peer could copy in a delete no node signed."""
    unsigned = record(1).delete("node-a", 5, "takedown", "alice")
    with pytest.raises(InvalidPeerRecord, match="no delete proof"):
        check_snapshot_record(unsigned.encode(), LIMITS)
    node_a = NodeIdentity.generate("node-a")
    moved = _moved_proof(record(2).delete("node-a", 5, "takedown", "alice", node_a), record(1))
    with pytest.raises(InvalidPeerRecord, match="does not verify"):
        check_snapshot_record(moved.encode(), LIMITS)
    signed = record(1).delete("node-a", 5, "takedown", "alice", node_a)
    assert check_snapshot_record(signed.encode(), LIMITS)[2] is True  # a signed delete copies
