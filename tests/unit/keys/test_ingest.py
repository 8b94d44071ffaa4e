"""The decision of an upload (meshkp.keys.ingest), committed on a MemoryStore: outcomes, writes,
index terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from crdt.vclock import VersionVector
from meshkp.keys.commit import UPLOADED, Committer
from meshkp.keys.ingest import KEYS_COUNTER, Status, certificate_terms, ingest, uploading
from meshkp.keys.record import KeyRecord, Tombstone
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.keytext import PartialKey, Rejected, parse_keytext, split_stream, streams
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.signature import parse_signature
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind, RecordWrite

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIMITS = Limits()
ALICE = bytes.fromhex("10FE8CF1B483F7525039AA2A361BC1F023E0DCCA")


def items(name: str) -> list:
    return parse_keytext((FIXTURES / name).read_bytes(), LIMITS)


def run(store: MemoryStore, parsed: list, node: str = "n1", limits: Limits = LIMITS):
    return Committer(limits).apply(store, uploading(parsed, node), UPLOADED)


def delete_alice(store: MemoryStore, reason: str) -> KeyRecord:
    """Store a tombstone on ALICE's record (actor ops@x); return the deleted record."""
    record = KeyRecord.decode(store.get(ALICE) or b"")
    deleted = record.delete("admin-node", hlc=1, reason=reason, actor="ops@x")
    store.write([RecordWrite(ALICE, deleted.encode(), old_terms=frozenset(), counters={})])
    return deleted


def test_new_key_is_added_with_terms_and_counter() -> None:
    store = MemoryStore()
    result = run(store, items("alice_unsigned.asc"))
    assert [o.status for o in result.outcomes] == [Status.ADDED]
    assert result.outcomes[0].user_ids == ("alice <alice@example.com>",)
    (write,) = result.writes
    assert write.fingerprint == ALICE and write.old_terms == frozenset()
    assert (IndexKind.EMAIL, b"alice@example.com") in write.new_terms
    assert any(kind is IndexKind.SKS_DIGEST for kind, _ in write.new_terms)
    assert write.counters == {KEYS_COUNTER: 1}
    assert store.counter(KEYS_COUNTER) == 1
    assert store.lookup(IndexKind.KEY_ID64, ALICE[-8:], 10) == [ALICE]
    record = KeyRecord.decode(store.get(ALICE) or b"")
    assert record.vv == VersionVector({"n1": 1})


def test_same_key_again_is_unchanged_and_writes_nothing() -> None:
    store = MemoryStore()
    run(store, items("alice_signed.asc"))
    result = run(store, items("alice_signed.asc"))
    assert [o.status for o in result.outcomes] == [Status.UNCHANGED]
    assert result.writes == []


def test_superset_updates_and_moves_terms() -> None:
    store = MemoryStore()
    run(store, items("alice_unsigned.asc"))
    stored = KeyRecord.decode(store.get(ALICE) or b"")
    result = run(store, items("alice_signed.asc"), node="n2")
    assert [o.status for o in result.outcomes] == [Status.UPDATED]
    (write,) = result.writes
    assert stored.certificate is not None
    assert write.old_terms == certificate_terms(stored.certificate, LIMITS)
    assert write.counters == {}
    record = KeyRecord.decode(store.get(ALICE) or b"")
    assert record.vv == VersionVector({"n1": 1, "n2": 1})
    assert store.counter(KEYS_COUNTER) == 1


def test_copies_in_one_upload_make_one_write() -> None:
    store = MemoryStore()
    result = run(store, items("alice_unsigned.asc") + items("alice_signed.asc"))
    assert [o.status for o in result.outcomes] == [Status.ADDED, Status.UPDATED]
    assert len(result.writes) == 1 and store.counter(KEYS_COUNTER) == 1


def test_rejected_items_pass_through() -> None:
    result = run(MemoryStore(), [Rejected("no valid self-signature", "AB" * 20)])
    assert result.outcomes[0].status is Status.REJECTED
    assert result.outcomes[0].reason == "no valid self-signature"
    assert not result.accepted and result.writes == []


def test_deleted_key_is_refused_with_who_and_why() -> None:
    store = MemoryStore()
    run(store, items("alice_signed.asc"))
    deleted = delete_alice(store, "takedown request #12")
    before = store.get(ALICE)
    result = run(store, items("alice_signed.asc"))
    (outcome,) = result.outcomes
    assert outcome.status is Status.REJECTED
    assert "deleted by ops@x: takedown request #12" in outcome.reason
    assert "contact the operator" in outcome.reason
    assert store.get(ALICE) == before and result.writes == []
    assert isinstance(deleted.tombstone, Tombstone)


def test_bare_revocation_merges_into_stored_key() -> None:
    store = MemoryStore()
    run(store, items("test-key.asc"))
    result = run(store, items("test-key-revoke.asc"))
    assert [o.status for o in result.outcomes] == [Status.UPDATED]
    again = run(store, items("test-key-revoke.asc"))
    assert [o.status for o in again.outcomes] == [Status.UNCHANGED]


def test_revocation_without_stored_key_is_rejected() -> None:
    result = run(MemoryStore(), items("test-key-revoke.asc"))
    (outcome,) = result.outcomes
    assert outcome.status is Status.REJECTED and "not on this server" in outcome.reason


def test_merge_over_key_bytes_is_rejected() -> None:
    unsigned = items("alice_unsigned.asc")[0]
    signed = items("alice_signed.asc")[0]
    assert isinstance(unsigned, Certificate) and isinstance(signed, Certificate)
    limits = Limits(key_bytes=len(unsigned.to_bytes()) + 1, packet_bytes=4096)
    store = MemoryStore()
    run(store, [unsigned], limits=limits)
    result = ingest([signed], store.get, store.lookup, "n1", limits)
    (outcome,) = result.outcomes
    if len(signed.merge(unsigned).to_bytes()) > limits.key_bytes:
        assert outcome.status is Status.REJECTED and "key_bytes" in outcome.reason
    else:  # pragma: no cover - the fixtures guarantee growth
        pytest.fail("alice_signed should be larger than alice_unsigned")


def signed_by_someone_else(with_subkey: bool) -> bytes:
    """alice_signed.asc (alice's key certified by 0x62AEA01D67640FB5) as the signer would
    send it back: alice's user ID with only the new certification, no self-signature on it."""
    (stream,) = streams((FIXTURES / "alice_signed.asc").read_bytes())
    (key,) = split_stream(parse_packets(stream))
    packets = list(key.packets)
    uid_at = next(i for i, p in enumerate(packets) if p.tag == Tag.USER_ID)
    sub_at = next(i for i, p in enumerate(packets) if p.tag == Tag.PUBLIC_SUBKEY)
    certification = next(
        p for p in packets[uid_at:sub_at]
        if p.tag == Tag.SIGNATURE and parse_signature(p.body).sig_type == 0x10
    )
    upload = [packets[0], packets[uid_at], certification]
    if with_subkey:
        upload += packets[sub_at:]  # a valid subkey binding: the key stands on its own
    return b"".join(p.encode() for p in upload)


@pytest.mark.parametrize("with_subkey", [False, True])
def test_third_party_certification_without_self_signature_is_kept(with_subkey: bool) -> None:
    store = MemoryStore()
    run(store, items("alice_unsigned.asc"))
    upload = parse_keytext(signed_by_someone_else(with_subkey), LIMITS)
    result = run(store, upload)
    assert [o.status for o in result.outcomes] == [Status.UPDATED]
    stored = KeyRecord.decode(store.get(ALICE) or b"").certificate
    (expected,) = items("alice_signed.asc")
    assert stored == expected  # the certification is on alice's user ID
    assert [o.status for o in run(store, upload).outcomes] == [Status.UNCHANGED]


def test_certification_without_self_signature_and_no_stored_key() -> None:
    alone = parse_keytext(signed_by_someone_else(with_subkey=False), LIMITS)
    (outcome,) = run(MemoryStore(), alone).outcomes
    assert outcome.status is Status.REJECTED and outcome.reason == "no valid self-signature"
    store = MemoryStore()
    (added,) = run(store, parse_keytext(signed_by_someone_else(with_subkey=True), LIMITS)).outcomes
    assert added.status is Status.ADDED
    stored = KeyRecord.decode(store.get(ALICE) or b"").certificate
    assert stored is not None and stored.user_ids == {}  # nothing to bind the user ID to


def test_only_uploads_with_orphaned_signatures_carry_their_packets() -> None:
    (partial,) = parse_keytext(signed_by_someone_else(with_subkey=True), LIMITS)
    assert isinstance(partial, PartialKey) and partial.fingerprint == ALICE
    assert isinstance(partial.alone, Certificate) and partial.alone.user_ids == {}
    for name in ("alice_signed.asc", "lp1195901.asc", "rtt-140.asc", "badselfsig.asc"):
        assert all(isinstance(i, Certificate) for i in items(name)), name


def test_orphaned_certification_for_a_deleted_key_changes_nothing() -> None:
    store = MemoryStore()
    run(store, items("alice_unsigned.asc"))
    delete_alice(store, "takedown")
    before = store.get(ALICE)
    result = run(store, parse_keytext(signed_by_someone_else(with_subkey=False), LIMITS))
    (outcome,) = result.outcomes
    assert outcome.status is Status.REJECTED and "deleted by ops@x" in outcome.reason
    assert result.writes == [] and store.get(ALICE) == before


@pytest.fixture(scope="module")
def v3_twins() -> tuple[bytes, bytes, bytes]:
    """Two self-signed v3 copies of one RSA key that differ only in the creation time of the
    key packet. A v3 fingerprint is MD5(n || e) (RFC 4880 §12.2), so both have the same
    fingerprint but different key packets. Also: the second copy plus a user ID carrying
    only a (bogus) third-party certification, which makes it a PartialKey upload."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from meshkp.openpgp.packet import Packet

    def mpi(value: int) -> bytes:
        return value.bit_length().to_bytes(2, "big") + value.to_bytes((value.bit_length() + 7) // 8, "big")

    secret = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    n, e = secret.public_key().public_numbers().n, secret.public_key().public_numbers().e
    key_id = n.to_bytes((n.bit_length() + 7) // 8, "big")[-8:]
    uid = b"v3 twin <v3@example.org>"

    def v3_sig(prefix: bytes, hashed: bytes, issuer: bytes | None = None) -> bytes:
        signature = secret.sign(hashed, padding.PKCS1v15(), hashes.SHA256())
        left16 = hashlib.sha256(hashed).digest()[:2]
        return (bytes([3, 5]) + prefix + (issuer or key_id) + bytes([1, 8]) + left16
                + mpi(int.from_bytes(signature, "big")))

    def copy(created: int) -> list[Packet]:
        body = bytes([3]) + created.to_bytes(4, "big") + b"\x00\x00\x01" + mpi(n) + mpi(e)
        prefix = bytes([0x13]) + created.to_bytes(4, "big")
        hashed = b"\x99" + len(body).to_bytes(2, "big") + body + uid + prefix
        return [Packet(Tag.PUBLIC_KEY, body), Packet(Tag.USER_ID, uid),
                Packet(Tag.SIGNATURE, v3_sig(prefix, hashed))]

    first, second = copy(1_000_000_000), copy(1_000_000_001)
    other_uid = Packet(Tag.USER_ID, b"someone else <x@example.org>")
    certification = Packet(
        Tag.SIGNATURE, v3_sig(bytes([0x10]) + (7).to_bytes(4, "big"), b"", issuer=b"\x5a" * 8)
    )
    partial = [*second, other_uid, certification]
    return tuple(b"".join(p.encode() for p in packets) for packets in (first, second, partial))


@pytest.mark.parametrize("which", [1, 2])
def test_v3_key_packet_differing_from_the_stored_one_is_rejected(
    v3_twins: tuple[bytes, bytes, bytes], which: int
) -> None:
    # A different key packet under the same fingerprint cannot be merged (there is one
    # primary): it is that upload's rejection, never an exception (a 500 on /pks/add).
    store = MemoryStore()
    (added,) = run(store, parse_keytext(v3_twins[0], LIMITS)).outcomes
    assert added.status is Status.ADDED
    before = store.get(added_fp := bytes.fromhex(added.fingerprint))
    upload = parse_keytext(v3_twins[which], LIMITS)
    assert isinstance(upload[0], PartialKey if which == 2 else Certificate)
    result = run(store, upload)
    (outcome,) = result.outcomes
    assert outcome.status is Status.REJECTED and "key packet" in outcome.reason
    assert result.writes == [] and store.get(added_fp) == before


def test_revocation_after_its_key_in_the_same_upload_revokes_it() -> None:
    # `cat key.asc revoke.asc` as one upload (or one batch of meshkp load): the key is not in
    # the store's index yet when its revocation is placed, but the revocation must find it.
    data = (FIXTURES / "test-key.asc").read_bytes() + (FIXTURES / "test-key-revoke.asc").read_bytes()
    store = MemoryStore()
    result = run(store, parse_keytext(data, LIMITS))
    assert [o.status for o in result.outcomes] == [Status.ADDED, Status.UPDATED]
    (write,) = result.writes
    record = KeyRecord.decode(store.get(write.fingerprint) or b"")
    (revoked,) = items("test-key-revoked.asc")
    assert record.certificate == revoked
    assert store.counter(KEYS_COUNTER) == 1
