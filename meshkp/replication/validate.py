"""Validation of a record received from a peer: a peer must not store what /pks/add would refuse.

A record is checked structurally (it decodes; its fingerprint is its primary key's; its size,
packet sizes, user ID lengths, version vector and tombstone are within bounds) and, when
`verify` is on, its certificate is re-normalised and must come out unchanged: every
self-signature verifies and the third-party signature cap holds (meshkp.openpgp.normalise).
Anything else raises InvalidPeerRecord naming what was wrong.
"""

from __future__ import annotations

from typing import Protocol

from crdt.vclock import VersionVector
from meshkp.errors import InvalidPeerRecord, MeshkpError
from meshkp.keys.deleteproof import DeleteProof
from meshkp.keys.record import KeyRecord, RecordFields, Tombstone, unpack_record
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.normalise import normalise
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.store.layout import FINGERPRINT_LENGTHS

# Version vector entries: one per node that ever updated the key. A mesh of thousands of
# nodes is far beyond the design; the bound stops a peer from growing every record it touches.
MAX_VV_ENTRIES = 4096
# A version vector counter: a local update adds one to this node's, and one at 2**64-1
# (msgpack's largest integer) could never be encoded again, so the key could not be updated or
# deleted here. Honest counters count updates; 2**63 leaves 2**63 more.
MAX_VV_COUNTER = 2**63
# Tombstone text fields: an operator's reason and name.
MAX_REASON_CHARS = 1024
MAX_ACTOR_CHARS = 256
# Bytes a record may carry beyond its certificate (version vector, tombstone, msgpack).
RECORD_OVERHEAD_BYTES = 256 * 1024


def max_record_bytes(limits: Limits) -> int:
    """The largest encoded record a peer may send."""
    return limits.key_bytes + RECORD_OVERHEAD_BYTES


def peer_fields(data: bytes) -> RecordFields:
    """The msgpack fields of a peer's record (unpacked once, for every later step)."""
    try:
        fields = unpack_record(data)
    except Exception as exc:  # a peer's bytes: every msgpack failure is a rejection
        raise InvalidPeerRecord(f"record is not msgpack: {exc}") from None
    if not isinstance(fields[1], bytes):
        raise InvalidPeerRecord("record is not a [format, fingerprint, cert, vv, tombstone] list")
    return fields


def parse_peer_record(
    data: bytes, limits: Limits, verify: bool, fields: RecordFields | None = None
) -> KeyRecord:
    """The record in `data` if it passes every check; InvalidPeerRecord otherwise.

    `fields` are its peer_fields when the caller unpacked them already (not unpacked again).
    """
    if len(data) > max_record_bytes(limits):
        raise InvalidPeerRecord(f"record of {len(data)} bytes exceeds {max_record_bytes(limits)}")
    try:
        record = KeyRecord.from_fields(fields if fields is not None else unpack_record(data))
    # Decoding a peer's bytes: msgpack, packet framing and regrouping raise many types; any of
    # them means the record is malformed, and the contract is one error type out.
    except Exception as exc:
        raise InvalidPeerRecord(f"record does not decode: {exc}") from None
    if len(record.fingerprint) not in FINGERPRINT_LENGTHS:
        raise InvalidPeerRecord(f"fingerprint of {len(record.fingerprint)} bytes")
    if len(record.vv) > MAX_VV_ENTRIES:
        raise InvalidPeerRecord(f"version vector of {len(record.vv)} entries")
    if not record.vv:
        raise InvalidPeerRecord("empty version vector: no update produced this record")
    if max(counter for _node, counter in record.vv.items()) > MAX_VV_COUNTER:
        raise InvalidPeerRecord(f"version vector counter over {MAX_VV_COUNTER}")
    tomb = record.tombstone
    if tomb is not None:
        if len(tomb.reason) > MAX_REASON_CHARS or len(tomb.actor) > MAX_ACTOR_CHARS:
            raise InvalidPeerRecord("tombstone reason or actor too long")
        if len(tomb.seen) > MAX_VV_ENTRIES or len(tomb.lifted or ()) > MAX_VV_ENTRIES:
            raise InvalidPeerRecord("tombstone version vector too large")
        check_delete_proofs(record.fingerprint, tomb)
    elif record.certificate is None:
        raise InvalidPeerRecord("record has neither certificate nor tombstone")
    if record.certificate is not None:
        _check_certificate(record.fingerprint, record.certificate, limits, verify)
    return record


def check_delete_proofs(fingerprint: bytes, tomb: Tombstone) -> None:
    """A standing delete from a peer must carry a good signature of a node that made it.

    Red-team finding 10: a holder of the cluster key deleted any key everywhere with one forged
    tombstone. Now the tombstone needs a proof (meshkp/keys/deleteproof.py) signed for this
    very fingerprint, and every proof it carries must hold; the signers' keys are checked
    against their node ids by the replicator (`proof_signers`). A lift-only tombstone (a
    keep-update resolution) deletes nothing and needs none.
    """
    if not tomb.proofs and tomb.active:
        raise InvalidPeerRecord(
            f"tombstone of {fingerprint.hex()} carries no delete proof: no node signed it")
    for proof in (*tomb.proofs, *tomb.lift_proofs):
        if not proof.holds(fingerprint):
            kind = "lift" if proof.lift else "delete"
            raise InvalidPeerRecord(
                f"{kind} proof of {fingerprint.hex()} by {proof.node!r} does not verify")
    # What the tombstone deletes, and what its lift covers, must be what was signed: a key
    # holder could otherwise widen a real delete to cover later adds, or lift it (undelete).
    if tomb.seen and not _joined_seen(tomb.proofs).dominates(tomb.seen):
        raise InvalidPeerRecord(
            f"tombstone of {fingerprint.hex()} has seen more than its delete proofs signed")
    if tomb.lifted is not None and not _joined_seen(tomb.lift_proofs).dominates(tomb.lifted):
        raise InvalidPeerRecord(
            f"tombstone of {fingerprint.hex()} is lifted further than its lift proofs signed "
            "(a keep-update resolution no node signed)")


def _joined_seen(proofs: tuple[DeleteProof, ...]) -> VersionVector:
    joined = VersionVector()
    for proof in proofs:
        joined = joined.merge(proof.seen)
    return joined


class AdminTable(Protocol):
    """The admin keys and conflict rules of the applied cluster policy (PolicyState)."""

    @property
    def has_admin_keys(self) -> bool: ...

    def admin_at(self, key: bytes, hlc: int) -> str | None: ...

    def rule_lifts(self, reason: str) -> bool: ...


def proving_admins(tomb: Tombstone | None, admins: AdminTable) -> list[str]:
    """The admins whose signature a tombstone's proofs carry, by a key that was theirs when the
    delete was stamped (each admin signature was verified with its proof, check_delete_proofs)."""
    if tomb is None:
        return []
    named = (admins.admin_at(p.admin_key, p.hlc) for p in tomb.proofs if p.admin_key)
    return sorted({name for name in named if name is not None})


def lift_allowed(tomb: Tombstone, admins: AdminTable) -> bool:
    """A lift stands if an admin signed one of its proofs, or (a rule's resolution, signed by
    the leader alone) the policy's rule for the delete's reason is update-wins here too."""
    proofs = tomb.lift_proofs
    if any(admins.admin_at(p.admin_key, p.hlc) is not None for p in proofs if p.admin_key):
        return True
    return bool(proofs) and admins.rule_lifts(tomb.reason)


def proof_signers(tomb: Tombstone | None) -> list[tuple[str, bytes]]:
    """The (node id, key) pairs that signed a tombstone's deletes and lifts, to check against
    PeerKeys."""
    if tomb is None:
        return []
    return [(p.node, p.key) for p in (*tomb.proofs, *tomb.lift_proofs)]


def _check_certificate(fingerprint: bytes, cert: Certificate, limits: Limits, verify: bool) -> None:
    try:
        primary = parse_public_key(cert.primary.packet.body)
    except Exception as exc:  # a peer's bytes: any parse failure is a rejection
        raise InvalidPeerRecord(f"primary key packet does not parse: {exc}") from None
    if primary.fingerprint != fingerprint:
        raise InvalidPeerRecord(
            f"record is filed under {fingerprint.hex()} but its key is {primary.fingerprint.hex()}"
        )
    size = 0
    for packet in cert.packets():
        encoded = len(packet.body) + 6
        size += encoded
        if len(packet.body) > limits.packet_bytes:
            raise InvalidPeerRecord(f"packet of {len(packet.body)} bytes over packet_bytes")
        if packet.tag == Tag.USER_ID and len(packet.body) > limits.uid_bytes:
            raise InvalidPeerRecord(f"user ID of {len(packet.body)} bytes over uid_bytes")
    if size > limits.key_bytes:
        raise InvalidPeerRecord(f"certificate of ~{size} bytes over key_bytes")
    if not verify:
        return
    try:
        canonical = normalise(list(cert.packets()), limits)
    except MeshkpError as exc:
        raise InvalidPeerRecord(f"certificate is not acceptable: {exc}") from None
    except Exception as exc:  # a peer's bytes: a parse bug must not escape as a crash
        raise InvalidPeerRecord(f"certificate does not verify: {exc!r}") from None
    if canonical != cert:
        raise InvalidPeerRecord(
            "certificate is not in normal form here (a self-signature does not verify, or the "
            "peer's limits differ from ours)"
        )
