"""The key record as a CRDT: join laws, deterministic bytes, deletes that stay deleted, conflicts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from crdt.vclock import VersionVector
from meshkp.keys.record import KeyRecord, Tombstone, served_certificate_bytes
from meshkp.limits import Limits
from meshkp.openpgp.armor import dearmor
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIMITS = Limits()


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
    assert a.join(b, LIMITS).encode() == b.join(a, LIMITS).encode()


@given(records(), records(), records())
def test_merge_is_associative(a: KeyRecord, b: KeyRecord, c: KeyRecord) -> None:
    assert a.join(b, LIMITS).join(c, LIMITS).encode() == a.join(b.join(c, LIMITS), LIMITS).encode()


@given(records())
def test_merge_is_idempotent(a: KeyRecord) -> None:
    assert a.join(a, LIMITS).encode() == a.encode()


@given(records())
def test_encoding_round_trips_to_the_same_bytes(a: KeyRecord) -> None:
    assert KeyRecord.decode(a.encode()).encode() == a.encode()
    assert KeyRecord.decode(a.encode()).state_hash() == a.state_hash()


def test_a_stale_replica_does_not_resurrect_a_deleted_key() -> None:
    original = KeyRecord.new(FULL, "n1")
    stale = original  # a node that was down during the delete still holds this
    deleted = original.delete("n1", 100, "takedown", "admin")
    assert deleted.deleted and deleted.conflict is None
    for merged in (deleted.join(stale, LIMITS), stale.join(deleted, LIMITS)):
        assert merged.deleted
        assert merged.live_certificate is None
        assert merged.conflict is None


def test_an_add_concurrent_with_a_delete_is_a_conflict_naming_both_sides() -> None:
    base = KeyRecord.new(_subset(1), "n1")
    deleted = base.delete("n1", 100, "takedown", "admin")
    concurrent_add = base.add(_subset(2**60 - 1), "n2")
    merged = deleted.join(concurrent_add, LIMITS)
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


@st.composite
def replica_histories(draw: st.DrawFn) -> tuple[int, list[tuple[str, int, int]]]:
    """(replica count, ops): each op is (kind, replica, argument) in the order they happen."""
    count = draw(st.integers(3, 5))
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "add", "add", "delete", "send"]),
                st.integers(0, count - 1),
                st.integers(0, 2**60),
            ),
            min_size=1, max_size=25,
        )
    )
    return count, ops


@given(replica_histories(), st.randoms(use_true_random=False))
def test_replicas_converge_under_reordering_duplicates_and_drops(history, rng) -> None:
    count, ops = history
    replicas: list[KeyRecord | None] = [None] * count
    in_flight: list[tuple[int, KeyRecord]] = []
    for kind, replica, argument in ops:
        node = f"n{replica}"
        state = replicas[replica]
        if kind == "add":
            cert = _subset(argument)
            replicas[replica] = KeyRecord.new(cert, node) if state is None else state.add(cert, node)
        elif kind == "delete" and state is not None:
            replicas[replica] = state.delete(node, argument, "takedown", node)
        elif state is not None:
            in_flight.append((argument % count, state))
        # The channel delivers a random queued message; it may stay queued (a duplicate later).
        if in_flight and rng.random() < 0.7:
            target, message = rng.choice(in_flight)
            if rng.random() < 0.5:
                in_flight.remove((target, message))
            mine = replicas[target]
            replicas[target] = message if mine is None else mine.join(message, LIMITS)
    # Whatever is still queued is dropped; a final full exchange must converge everyone.
    states = [s for s in replicas if s is not None]
    if not states:
        return
    final = states[0]
    for other in states[1:]:
        final = final.join(other, LIMITS)
    converged = []
    for state in states:
        for other in states:
            state = state.join(other, LIMITS)
        converged.append(state.encode())
    assert set(converged) == {final.encode()}
    # Delete-wins: a key with any tombstone is not served anywhere.
    assert (final.live_certificate is None) == any(s.tombstone is not None for s in states)


def test_sks_digest_is_of_the_live_packets() -> None:
    record = KeyRecord.new(FULL, "n1")
    assert record.sks_digest is not None and len(record.sks_digest) == 32
    assert record.delete("n1", 1, "r", "a").sks_digest is None


@given(st.binary(max_size=200))
def test_garbage_records_raise_only_store_error(data: bytes) -> None:
    from meshkp.errors import StoreError

    try:
        KeyRecord.decode(data)
    except StoreError:
        pass


def test_structurally_wrong_records_raise_store_error() -> None:
    import msgpack
    import pytest

    from meshkp.errors import StoreError

    for bad in (
        [1, b"fp", "not bytes", {}, None],
        [1, b"fp", None, {"n1": "x"}, None],
        [1, b"fp", None, {}, [1, 2]],
        [1, b"fp", None, {}, [{}, "hlc", "r", "a"]],
        [1, b"fp", b"\x01\x02", {}, None],
    ):
        with pytest.raises(StoreError):
            KeyRecord.decode(msgpack.packb(bad, use_bin_type=True))


def test_a_join_builds_the_certificate_union_once(monkeypatch) -> None:
    # The join used to union the packets twice: KeyRecord.merge, then the capped merge again.
    unions = []
    union = Certificate.merge
    monkeypatch.setattr(Certificate, "merge", lambda self, other: unions.append(1) or union(self, other))
    a, b = KeyRecord.new(_subset(0x0F0F0F), "n1"), KeyRecord.new(_subset(0xF0F0F0), "n2")
    joined = a.join(b, LIMITS)
    assert len(unions) == 1
    assert joined.certificate == union(a.certificate, b.certificate)
    assert joined.vv.to_obj() == {"n1": 1, "n2": 1}
