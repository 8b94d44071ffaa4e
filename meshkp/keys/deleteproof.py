"""DeleteProof: the deleting node's signature on a delete, so a tombstone names and proves it.

A tombstone hides a key on every node (delete-wins), and before issue 12 any holder of the
cluster key could push one, naming any admin, without an admin token (red-team finding 10).
Now the node where the admin deleted the key signs what it did with its Ed25519 identity: the
key, the admin it acted for (`actor`, a named admin or "admin"), the reason, its HLC stamp and
the version vector it had seen. A tombstone carries the proofs of every delete it joins
(`Tombstone.proofs`, a set: the join is their union), and a node accepts a peer's tombstone
only if (meshkp/replication/validate.py):

- every proof's signature holds under the key it names, and that key is the node's
  (the id derives from it, or it is the key this node learnt for that id);
- the proofs' seen vectors cover the tombstone's (a forger cannot widen a real delete);
- its actor, reason and stamp are those of one of its proofs (what the audit shows was signed).

A delete made with a named admin's token carries a second signature, by the admin's key
(derived from its token, meshkp/keys/adminkey.py), over the same delete: `admin_key` and
`admin_sig`. The node's signature covers `admin_key` too. A receiver whose admin table names
that key for that actor knows the admin asked, not only the node: a node holding the cluster
key but no admin token can no longer delete (meshkp/replication/replicator.py checks the key
against the table). Proofs without an admin part (7 fields) are still decoded: they are what
a delete made with a bootstrap token alone, or by an older node, carries.

A conflict resolution is signed the same way, by the node that proposed it (and the admin who
asked, if one did), and the signature travels in the log entry, so every node writes the same
bytes: a keep-delete resolution is a delete that has seen the conflict's vector; a keep-update
resolution's *lift* is a proof of kind `lift` (its own context, so no delete proof can stand
for a lift nor the reverse) whose `seen` is the vector the lift covers
(`Tombstone.lift_proofs`). A tombstone's `seen` must be covered by its delete proofs and its
lift by its lift proofs, so a key holder cannot widen a real delete or lift one
(meshkp/replication/validate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import nacl.signing

from crdt.errors import CrdtError
from crdt.vclock import VersionVector
from meshkp.errors import StoreError
from meshkp.net.identity import SIGNATURE_BYTES, NodeIdentity, verify_signature

_CONTEXT = "meshkp-delete-v1"  # domain separation: a delete signature signs nothing else
_LIFT_CONTEXT = "meshkp-lift-v1"  # a lift's proof: never mistaken for a delete's
_ADMIN_CONTEXT = b"meshkp-delete-admin-v1\x00"  # what the admin's key signs before the body
PUBLIC_KEY_BYTES = 32
# Proofs one tombstone carries: one per delete of the key that it joins. Deleting one key again
# and again is rare; a peer's record with more is refused rather than kept growing.
MAX_PROOFS = 64


@dataclass(frozen=True, slots=True)
class DeleteProof:
    """One node's signed statement: "I deleted this key for `actor`, having seen `seen`"; with
    `admin_key`, the admin's own signature of the same statement (`admin_sig`)."""

    node: str
    key: bytes  # the node's Ed25519 public key
    hlc: int
    reason: str
    actor: str
    seen: VersionVector
    sig: bytes
    admin_key: bytes = b""  # the admin's public key (adminkey.py); b"": the node vouches alone
    admin_sig: bytes = b""
    lift: bool = False  # a lift's proof (kept apart, Tombstone.lift_proofs: not encoded)

    @staticmethod
    def signed_bytes(fingerprint: bytes, node: str, key: bytes, hlc: int, reason: str,
                     actor: str, seen: VersionVector, admin_key: bytes = b"",
                     lift: bool = False) -> bytes:
        fields: list[object] = [_LIFT_CONTEXT if lift else _CONTEXT, fingerprint, node, key, hlc,
                                reason, actor, seen.to_obj()]
        if admin_key:
            fields.append(admin_key)
        data: bytes = msgpack.packb(fields, use_bin_type=True)
        return data

    @classmethod
    def make(cls, identity: NodeIdentity, fingerprint: bytes, hlc: int, reason: str, actor: str,
             seen: VersionVector, admin: nacl.signing.SigningKey | None = None,
             lift: bool = False) -> DeleteProof:
        """The proof of a delete (or, with `lift`, of a lift covering `seen`) done here, signed
        with this node's identity (and by `admin`, the key of the admin who asked, if any)."""
        key = identity.public_key
        admin_key = bytes(admin.verify_key) if admin is not None else b""
        body = cls.signed_bytes(fingerprint, identity.node_id, key, hlc, reason, actor, seen,
                                admin_key, lift)
        admin_sig = admin.sign(_ADMIN_CONTEXT + body).signature if admin is not None else b""
        return cls(identity.node_id, key, hlc, reason, actor, seen, identity.sign(body),
                   admin_key, bytes(admin_sig), lift)

    def _body(self, fingerprint: bytes) -> bytes:
        return self.signed_bytes(fingerprint, self.node, self.key, self.hlc, self.reason,
                                 self.actor, self.seen, self.admin_key, self.lift)

    def encode(self) -> bytes:
        """The proof as bytes (carried in a ResolveConflict log entry)."""
        data: bytes = msgpack.packb(self.to_obj(), use_bin_type=True)
        return data

    @classmethod
    def decode(cls, data: bytes, lift: bool = False) -> DeleteProof:
        """Inverse of encode; StoreError naming what is malformed."""
        try:
            obj = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise StoreError(f"delete proof does not decode: {exc}") from None
        return cls.from_obj(obj, lift)

    def holds(self, fingerprint: bytes) -> bool:
        """True if the signature is the named key's over this delete of `fingerprint` (and the
        admin's signature, when there is one, is its key's)."""
        body = self._body(fingerprint)
        if not verify_signature(self.key, self.sig, body):
            return False
        return not self.admin_key or verify_signature(self.admin_key, self.admin_sig,
                                                      _ADMIN_CONTEXT + body)

    def to_obj(self) -> list[object]:
        obj: list[object] = [self.node, self.key, self.hlc, self.reason, self.actor,
                             self.seen.to_obj(), self.sig]
        if self.admin_key:
            obj += [self.admin_key, self.admin_sig]
        return obj

    @classmethod
    def from_obj(cls, obj: Any, lift: bool = False) -> DeleteProof:
        """Inverse of to_obj (`lift`: read from a tombstone's lift proofs); StoreError naming
        what is malformed."""
        if not isinstance(obj, list) or len(obj) not in (7, 9):
            raise StoreError("delete proof must be [node, key, hlc, reason, actor, seen, sig"
                             "(, admin key, admin sig)]")
        node, key, hlc, reason, actor, seen, sig = obj[:7]
        admin_key, admin_sig = (obj[7], obj[8]) if len(obj) == 9 else (b"", b"")
        if (not isinstance(node, str) or not isinstance(reason, str) or not isinstance(actor, str)
                or not isinstance(hlc, int) or isinstance(hlc, bool)
                or not isinstance(key, bytes) or len(key) != PUBLIC_KEY_BYTES
                or not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES):
            raise StoreError("delete proof fields have the wrong types or sizes")
        if len(obj) == 9 and (not isinstance(admin_key, bytes) or len(admin_key) != PUBLIC_KEY_BYTES
                              or not isinstance(admin_sig, bytes)
                              or len(admin_sig) != SIGNATURE_BYTES):
            raise StoreError("delete proof admin key or signature has the wrong type or size")
        try:
            vector = VersionVector.from_obj(seen)
        except CrdtError as exc:
            raise StoreError(f"delete proof version vector is malformed: {exc}") from None
        return cls(node, key, hlc, reason, actor, vector, sig, admin_key, admin_sig, lift)


def joined(a: tuple[DeleteProof, ...], b: tuple[DeleteProof, ...]) -> tuple[DeleteProof, ...]:
    """The union of two proof sets, in one canonical order (by signature) on every node."""
    if not b or a == b:
        return a
    if not a:
        return b
    return tuple(sorted({p.sig: p for p in (*a, *b)}.values(), key=lambda p: p.sig))
