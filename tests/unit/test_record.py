"""The key record as a CRDT: join laws, deterministic bytes, deletes that stay deleted, conflicts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from crdt.vclock import VersionVector
from meshkp.openpgp.armor import dearmor
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.record import KeyRecord, Tombstone, served_certificate_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _real_certificate(name: str) -> Certificate:
    packets = [
        p for p in parse_packets(dearmor((FIXTURES / name).read_bytes())[0])
        if p.tag in (Tag.PUBLIC_KEY, Tag.SIGNATURE, Tag.USER_ID, Tag.USER_ATTRIBUTE, Tag.PUBLIC_SUBKEY)
    ]
    return certificate_from_packets(parse_public_key(packets[0].body).fingerprint, packets)


FULL = _real_certificate("lp1195901.asc")
ALL_SIGNATURES = sorted({s for c in FULL.components() for s in c.signatures})
NODES = ("n1", "n2", "n3")


def _subset(mask: int) -> Certificate:
    """A copy of FULL holding only the signatures selected by `mask` (components all kept)."""
    chosen = {s for i, s in enumerate(ALL_SIGNATURES) if mask >> (i % 60) & 1}

    def keep(component):
        return type(component)(component.packet, component.signatures & chosen)

    return Certificate(
        FULL.fingerprint,
        keep(FULL.primary),
        {b: keep(c) for b, c in FULL.user_ids.items()},
        {b: keep(c) for b, c in FULL.user_attributes.items()},
        {b: keep(c) for b, c in FULL.subkeys.items()},
    )


@st.composite
def records(draw: st.DrawFn) -> KeyRecord:
    record = KeyRecord.new(_subset(draw(st.integers(0, 2**60))), draw(st.sampled_from(NODES)))
    for _ in range(draw(st.integers(0, 3))):
        node = draw(st.sampled_from(NODES))
        if draw(st.booleans()):
            record = record.add(_subset(draw(st.integers(0, 2**60))), node)
        else:
            record = record.delete(node, draw(st.integers(0, 10**6)), "takedown", f"admin@{node}")
    return record


@given(records(), records())
def test_merge_is_commutative(a: KeyRecord, b: KeyRecord) -> None:
    assert a.merge(b).encode() == b.merge(a).encode()


@given(records(), records(), records())
def test_merge_is_associative(a: KeyRecord, b: KeyRecord, c: KeyRecord) -> None:
    assert a.merge(b).merge(c).encode() == a.merge(b.merge(c)).encode()


@given(records())
def test_merge_is_idempotent(a: KeyRecord) -> None:
    assert a.merge(a).encode() == a.encode()


@given(records())
def test_encoding_round_trips_to_the_same_bytes(a: KeyRecord) -> None:
    assert KeyRecord.decode(a.encode()).encode() == a.encode()
    assert KeyRecord.decode(a.encode()).state_hash() == a.state_hash()


def test_a_stale_replica_does_not_resurrect_a_deleted_key() -> None:
    original = KeyRecord.new(FULL, "n1")
    stale = original  # a node that was down during the delete still holds this
    deleted = original.delete("n1", 100, "takedown", "admin")
    assert deleted.deleted and deleted.conflict is None
    for merged in (deleted.merge(stale), stale.merge(deleted)):
        assert merged.deleted
        assert merged.live_certificate is None
        assert merged.conflict is None


def test_an_add_concurrent_with_a_delete_is_a_conflict_naming_both_sides() -> None:
    base = KeyRecord.new(_subset(1), "n1")
    deleted = base.delete("n1", 100, "takedown", "admin")
    concurrent_add = base.add(_subset(2**60 - 1), "n2")
    merged = deleted.merge(concurrent_add)
    conflict = merged.conflict
    assert conflict is not None
    assert conflict.unseen_adds == {"n2": 1}
    assert conflict.tombstone.actor == "admin"
    assert merged.live_certificate is None  # delete wins until the conflict is resolved
    assert merged.certificate is not None  # but the packets are kept for the resolution


def test_served_bytes_are_the_canonical_certificate_and_none_when_deleted() -> None:
    record = KeyRecord.new(FULL, "n1")
    assert served_certificate_bytes(record.encode()) == FULL.to_bytes()
    assert served_certificate_bytes(record.delete("n1", 1, "r", "a").encode()) is None


def test_concurrent_deletes_join_their_seen_vectors() -> None:
    a = Tombstone(VersionVector({"n1": 2}), 5, "spam", "alice")
    b = Tombstone(VersionVector({"n2": 3}), 7, "takedown", "bob")
    merged = a.merge(b)
    assert merged == b.merge(a)
    assert merged.seen == VersionVector({"n1": 2, "n2": 3})
    assert (merged.actor, merged.reason) == ("bob", "takedown")
