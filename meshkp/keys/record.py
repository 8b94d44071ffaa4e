"""The key record: a certificate (packet sets), a version vector and an optional tombstone.

This is the CRDT of DESIGN.md "The key record is a CRDT". `KeyRecord.join` is its one join:
- certificate: union of packets per component, with the third-party signature cap re-applied
  (the cap keeps the smallest signatures by hash, so it commutes with the union);
- vv: pointwise max of the version vectors of the updates that produced the state;
- tombstone: the delete whose `seen` vector covers the other's (concurrent deletes join).

Whether a key is live, deleted, or in conflict is *derived* from the merged state, so
every replica that has merged the same updates answers the same:
- no tombstone: live;
- tombstone whose `seen` dominates vv: deleted (the deleter had seen every add);
- tombstone that does not dominate vv: some add was concurrent with the delete (neither
  saw the other). That is a conflict; the default policy is delete-wins, so the key is
  not served, and the conflict names both sides until the control plane resolves it.
Packets are kept under a tombstone so that a conflict can be resolved either way.

A conflict resolved for the update (the control plane's ResolveConflict, keep "update")
*lifts* the tombstone: `Tombstone.lifted` is the version vector the decision covered, and a
tombstone whose lift covers what it had seen no longer deletes. Lifts join by pointwise max
like everything else, so the decision is a state every replica converges on; a later delete
sees more than the lift covers and deletes again. See docs/replication.md "Resolutions".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack
import nacl.signing

from crdt.errors import CrdtError
from crdt.vclock import VersionVector
from meshkp.errors import InvalidPeerRecord, MeshkpError, StoreError
from meshkp.keys.deleteproof import MAX_PROOFS, DeleteProof
from meshkp.keys.deleteproof import joined as joined_proofs
from meshkp.limits import Limits
from meshkp.net.identity import NodeIdentity
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.digest import certificate_digest
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.normalise import merge as merge_certificates

RECORD_FORMAT = 1
# The msgpack fields of an encoded record: [format, fingerprint, certificate, vv, tombstone].
RecordFields = list[Any]


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A delete that wins against everything in `seen` (the vv the deleter had merged)."""

    seen: VersionVector
    hlc: int
    reason: str
    actor: str
    # What a keep-update resolution covered (None: never lifted); see the module doc.
    lifted: VersionVector | None = None
    # The deleting nodes' signatures of every delete this tombstone joins (deleteproof.py),
    # in canonical order; empty for a lift-only tombstone (a resolution) and unsigned deletes.
    proofs: tuple[DeleteProof, ...] = ()
    # The resolving nodes' signatures of every lift joined into `lifted` (deleteproof.py).
    lift_proofs: tuple[DeleteProof, ...] = ()

    @property
    def active(self) -> bool:
        """True while the delete stands: no lift covers everything it had seen."""
        return self.lifted is None or not self.lifted.dominates(self.seen)

    def merge(self, other: Tombstone) -> Tombstone:
        """Join of two deletes: the union of what they had seen and of their lifts; the
        later stamp names it."""
        later = max(self, other, key=lambda t: (t.hlc, t.actor, t.reason))
        lifted = self.lifted if other.lifted is None else (
            other.lifted if self.lifted is None else self.lifted.merge(other.lifted))
        return Tombstone(self.seen.merge(other.seen), later.hlc, later.reason, later.actor, lifted,
                         joined_proofs(self.proofs, other.proofs),
                         joined_proofs(self.lift_proofs, other.lift_proofs))

    def to_obj(self) -> list[object]:
        """[seen, hlc, reason, actor], the lift as a fifth field once there is one (a record
        never resolved keeps the bytes, and so the Merkle leaf, it always had), and the delete
        proofs as a sixth (the fifth is then None while there is no lift), the lift proofs as a
        seventh (the sixth is then [] while there is no delete proof)."""
        obj: list[object] = [self.seen.to_obj(), self.hlc, self.reason, self.actor]
        if self.lifted is not None or self.proofs or self.lift_proofs:
            obj.append(self.lifted.to_obj() if self.lifted is not None else None)
        if self.proofs or self.lift_proofs:
            obj.append([p.to_obj() for p in self.proofs])
        if self.lift_proofs:
            obj.append([p.to_obj() for p in self.lift_proofs])
        return obj

    @classmethod
    def from_obj(cls, obj: object) -> Tombstone:
        """Inverse of to_obj; raises StoreError naming what is malformed."""
        if not isinstance(obj, list) or len(obj) not in (4, 5, 6, 7):
            raise StoreError("tombstone must be a list of [seen, hlc, reason, actor(, lifted"
                             "(, proofs(, lift proofs)))]")
        seen, hlc, reason, actor = obj[:4]
        # bool is an int to Python but not to msgpack: True would re-encode unlike 1.
        if (not isinstance(hlc, int) or isinstance(hlc, bool)
                or not isinstance(reason, str) or not isinstance(actor, str)):
            raise StoreError("tombstone hlc must be an int and reason/actor strings")
        try:
            vector = VersionVector.from_obj(seen)
            lifted = VersionVector.from_obj(obj[4]) if len(obj) >= 5 and obj[4] is not None \
                else None
        except CrdtError as exc:
            raise StoreError(f"tombstone version vector is malformed: {exc}") from None
        proofs: tuple[DeleteProof, ...] = ()
        lift_proofs: tuple[DeleteProof, ...] = ()
        if len(obj) >= 6:
            least = 1 if len(obj) == 6 else 0  # empty only before lift proofs
            if not isinstance(obj[5], list) or not least <= len(obj[5]) <= MAX_PROOFS:
                raise StoreError(f"tombstone proofs must be a list of {least}..{MAX_PROOFS}")
            proofs = joined_proofs((), tuple(DeleteProof.from_obj(p) for p in obj[5]))
        if len(obj) == 7:
            if not isinstance(obj[6], list) or not 0 < len(obj[6]) <= MAX_PROOFS:
                raise StoreError(f"tombstone lift proofs must be a list of 1..{MAX_PROOFS}")
            lift_proofs = joined_proofs((), tuple(DeleteProof.from_obj(p, lift=True)
                                                  for p in obj[6]))
        return cls(vector, hlc, reason, actor, lifted, proofs, lift_proofs)


@dataclass(frozen=True, slots=True)
class Conflict:
    """An add concurrent with a delete: the tombstone, and the adds it had not seen."""

    fingerprint: bytes
    tombstone: Tombstone
    unseen_adds: dict[str, int]
    vv: VersionVector  # the record's: both sides of the conflict, as this replica has them

    @property
    def id(self) -> str:
        """The same on every replica holding the same two sides: a hash of the fingerprint,
        the delete (what it had seen, its stamp) and the record's version vector. A further
        concurrent add or delete makes another conflict, with another id."""
        tomb = self.tombstone
        data = msgpack.packb([self.fingerprint, tomb.seen.to_obj(), tomb.hlc, self.vv.to_obj()],
                             use_bin_type=True)
        return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Replicated state of one fingerprint. `certificate` is None for a delete of an unseen key."""

    fingerprint: bytes
    certificate: Certificate | None
    vv: VersionVector
    tombstone: Tombstone | None = None

    # -- derived state -------------------------------------------------------------------

    @property
    def deleted(self) -> bool:
        """True when lookups must not serve this key (deleted, or in delete-wins conflict)."""
        return self.tombstone is not None and self.tombstone.active

    @property
    def conflict(self) -> Conflict | None:
        if not self.deleted or self.tombstone is None or self.tombstone.seen.dominates(self.vv):
            return None
        unseen = {
            node: counter
            for node, counter in self.vv.to_obj().items()
            if counter > self.tombstone.seen.get(node)
        }
        return Conflict(self.fingerprint, self.tombstone, unseen, self.vv)

    @property
    def live_certificate(self) -> Certificate | None:
        """The certificate lookups serve: None while a tombstone stands (delete-wins)."""
        return None if self.deleted else self.certificate

    # -- CRDT operations -----------------------------------------------------------------

    def join(self, other: KeyRecord, limits: Limits) -> KeyRecord:
        """The join of two replicas' states (commutative, associative, idempotent).

        The certificate union is built once, with the signature cap of `limits` re-applied as
        ingest does. InvalidPeerRecord if the two hold different primary key packets: a v3
        fingerprint (RFC 4880 §12.2: MD5 of n and e) does not cover the creation time, so two
        different primary packets can share one, and no union of them exists.
        """
        if other.fingerprint != self.fingerprint:
            raise ValueError("cannot join records of different fingerprints")
        return KeyRecord(self.fingerprint, self._joined_certificate(other, limits),
                         self.vv.merge(other.vv), self._joined_tombstone(other))

    def _joined_certificate(self, other: KeyRecord, limits: Limits) -> Certificate | None:
        mine, theirs = self.certificate, other.certificate
        if mine is None or theirs is None or mine == theirs:
            return theirs if mine is None else mine  # an absent certificate is the identity
        if mine.primary.packet != theirs.primary.packet:
            raise InvalidPeerRecord(
                f"record {other.fingerprint.hex()} has another primary key packet than ours"
            )
        return merge_certificates(mine, theirs, limits)

    def _joined_tombstone(self, other: KeyRecord) -> Tombstone | None:
        mine, theirs = self.tombstone, other.tombstone
        if mine is None or theirs is None:
            return theirs if mine is None else mine  # an absent tombstone is the identity
        return mine.merge(theirs)

    def add(self, certificate: Certificate, node_id: str) -> KeyRecord:
        """A local accepted upload: union the packets and count one update by `node_id`."""
        merged = certificate if self.certificate is None else self.certificate.merge(certificate)
        return KeyRecord(self.fingerprint, merged, self.vv.increment(node_id), self.tombstone)

    def delete(self, node_id: str, hlc: int, reason: str, actor: str,
               identity: NodeIdentity | None = None,
               admin: nacl.signing.SigningKey | None = None) -> KeyRecord:
        """A local delete: wins against everything this replica has seen, including itself.

        Signed with `identity` (the node's), so that peers accept it, and with `admin`, the key
        of the admin who asked (deleteproof.py).
        """
        vv = self.vv.increment(node_id)
        proofs = (DeleteProof.make(identity, self.fingerprint, hlc, reason, actor, vv, admin),) \
            if identity is not None else ()
        tombstone = Tombstone(vv, hlc, reason, actor, proofs=proofs)
        if self.tombstone is not None:
            tombstone = self.tombstone.merge(tombstone)
        return KeyRecord(self.fingerprint, self.certificate, vv, tombstone)

    @classmethod
    def new(cls, certificate: Certificate, node_id: str) -> KeyRecord:
        return cls(certificate.fingerprint, certificate, VersionVector().increment(node_id))

    # -- encoding ------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Deterministic bytes: the same state gives the same bytes on every node."""
        cert = self.certificate.to_bytes() if self.certificate is not None else None
        tomb = self.tombstone.to_obj() if self.tombstone is not None else None
        encoded: bytes = msgpack.packb(
            [RECORD_FORMAT, self.fingerprint, cert, self.vv.to_obj(), tomb], use_bin_type=True
        )
        return encoded

    @classmethod
    def decode(cls, data: bytes) -> KeyRecord:
        """Inverse of encode; any malformed input raises StoreError saying what is wrong."""
        return cls.from_fields(unpack_record(data))

    @classmethod
    def from_fields(cls, fields: RecordFields) -> KeyRecord:
        """The record of unpacked fields (unpack_record): decode without unpacking again."""
        fmt, fingerprint, cert, vv, tomb = fields
        if fmt != RECORD_FORMAT:
            raise StoreError(f"key record format {fmt} is not supported by this meshkp version")
        if not isinstance(fingerprint, bytes) or not isinstance(cert, bytes | None):
            raise StoreError("key record fingerprint and certificate must be bytes")
        try:
            certificate = None
            if cert is not None:
                certificate = certificate_from_packets(fingerprint, parse_packets(cert))
            vector = VersionVector.from_obj(vv)
        except (MeshkpError, CrdtError, ValueError, KeyError) as exc:
            raise StoreError(f"key record content is malformed: {exc}") from None
        tombstone = Tombstone.from_obj(tomb) if tomb is not None else None
        return cls(fingerprint, certificate, vector, tombstone)

    @property
    def sks_digest(self) -> str | None:
        """SKS MD5 digest of the live packets (op=hget, /pks/hashquery); None when not served."""
        live = self.live_certificate
        return certificate_digest(live) if live is not None else None

    def state_hash(self) -> bytes:
        """SHA-256 of the encoded state: the Merkle leaf digest for anti-entropy."""
        return hashlib.sha256(self.encode()).digest()


def unpack_record(data: bytes) -> RecordFields:
    """The five msgpack fields of an encoded record; StoreError if it is not such a list."""
    try:
        fields = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreError(f"key record is corrupt: {exc}; run POST /cluster/repair") from None
    if not isinstance(fields, list) or len(fields) != 5:
        raise StoreError("key record is not a [format, fingerprint, cert, vv, tombstone] list")
    return fields


def served_certificate_bytes(data: bytes) -> bytes | None:
    """The binary key to serve from an encoded record, without regrouping (the op=get fast path)."""
    fmt, _fingerprint, cert, _vv, tomb = msgpack.unpackb(data, raw=False)
    if fmt != RECORD_FORMAT or not isinstance(cert, bytes):
        return None
    if tomb is not None and (not isinstance(tomb, list) or len(tomb) < 5 or tomb[4] is None
                             or Tombstone.from_obj(tomb).active):
        return None  # deleted (a lifted tombstone, the rare case, is decoded to be sure)
    return cert
