"""The key record: a certificate (packet sets), a version vector and an optional tombstone.

This is the CRDT of DESIGN.md "The key record is a CRDT". State merge is a join:
- certificate: union of packets per component;
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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

import msgpack

from crdt.errors import CrdtError
from crdt.vclock import VersionVector
from meshkp.errors import MeshkpError, StoreError
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.framing import parse_packets

RECORD_FORMAT = 1


class _Joinable(Protocol):
    def merge(self, other: Self) -> Self: ...


J = TypeVar("J", bound=_Joinable)


def _join(mine: J | None, theirs: J | None) -> J | None:
    """The join of two optional states: an absent one is the identity."""
    if mine is None:
        return theirs
    if theirs is None:
        return mine
    return mine.merge(theirs)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A delete that wins against everything in `seen` (the vv the deleter had merged)."""

    seen: VersionVector
    hlc: int
    reason: str
    actor: str

    def merge(self, other: Tombstone) -> Tombstone:
        """Join of two deletes: the union of what they had seen; the later stamp names it."""
        later = max(self, other, key=lambda t: (t.hlc, t.actor, t.reason))
        return Tombstone(self.seen.merge(other.seen), later.hlc, later.reason, later.actor)

    def to_obj(self) -> list[object]:
        return [self.seen.to_obj(), self.hlc, self.reason, self.actor]

    @classmethod
    def from_obj(cls, obj: object) -> Tombstone:
        """Inverse of to_obj; raises StoreError naming what is malformed."""
        if not isinstance(obj, list) or len(obj) != 4:
            raise StoreError("tombstone must be a list of [seen, hlc, reason, actor]")
        seen, hlc, reason, actor = obj
        # bool is an int to Python but not to msgpack: True would re-encode unlike 1.
        if (not isinstance(hlc, int) or isinstance(hlc, bool)
                or not isinstance(reason, str) or not isinstance(actor, str)):
            raise StoreError("tombstone hlc must be an int and reason/actor strings")
        try:
            vector = VersionVector.from_obj(seen)
        except CrdtError as exc:
            raise StoreError(f"tombstone version vector is malformed: {exc}") from None
        return cls(vector, hlc, reason, actor)


@dataclass(frozen=True, slots=True)
class Conflict:
    """An add concurrent with a delete: the tombstone, and the adds it had not seen."""

    fingerprint: bytes
    tombstone: Tombstone
    unseen_adds: dict[str, int]


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
        return self.tombstone is not None

    @property
    def conflict(self) -> Conflict | None:
        if self.tombstone is None or self.tombstone.seen.dominates(self.vv):
            return None
        unseen = {
            node: counter
            for node, counter in self.vv.to_obj().items()
            if counter > self.tombstone.seen.get(node)
        }
        return Conflict(self.fingerprint, self.tombstone, unseen)

    @property
    def live_certificate(self) -> Certificate | None:
        """The certificate lookups serve: None while a tombstone stands (delete-wins)."""
        return None if self.deleted else self.certificate

    # -- CRDT operations -----------------------------------------------------------------

    def merge(self, other: KeyRecord) -> KeyRecord:
        """The join of two replicas' states (commutative, associative, idempotent)."""
        if other.fingerprint != self.fingerprint:
            raise ValueError("cannot merge records of different fingerprints")
        return KeyRecord(self.fingerprint, _join(self.certificate, other.certificate),
                         self.vv.merge(other.vv), _join(self.tombstone, other.tombstone))

    def add(self, certificate: Certificate, node_id: str) -> KeyRecord:
        """A local accepted upload: union the packets and count one update by `node_id`."""
        merged = certificate if self.certificate is None else self.certificate.merge(certificate)
        return KeyRecord(self.fingerprint, merged, self.vv.increment(node_id), self.tombstone)

    def delete(self, node_id: str, hlc: int, reason: str, actor: str) -> KeyRecord:
        """A local delete: wins against everything this replica has seen, including itself."""
        vv = self.vv.increment(node_id)
        tombstone = Tombstone(vv, hlc, reason, actor)
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
        try:
            fmt, fingerprint, cert, vv, tomb = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise StoreError(f"key record is corrupt: {exc}; run POST /cluster/repair") from None
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
        from meshkp.openpgp.digest import certificate_digest

        live = self.live_certificate
        return certificate_digest(live) if live is not None else None

    def state_hash(self) -> bytes:
        """SHA-256 of the encoded state: the Merkle leaf digest for anti-entropy."""
        return hashlib.sha256(self.encode()).digest()


def served_certificate_bytes(data: bytes) -> bytes | None:
    """The binary key to serve from an encoded record, without regrouping (the op=get fast path)."""
    fmt, _fingerprint, cert, _vv, tomb = msgpack.unpackb(data, raw=False)
    if fmt != RECORD_FORMAT or tomb is not None or not isinstance(cert, bytes):
        return None
    return cert
