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

What it cannot prove: that the admin really asked. The deleting node vouches for its actor (it
checked the admin's token); a compromised node can still delete, but only in its own name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from crdt.errors import CrdtError
from crdt.vclock import VersionVector
from meshkp.errors import StoreError
from meshkp.net.identity import SIGNATURE_BYTES, NodeIdentity, verify_signature

_CONTEXT = "meshkp-delete-v1"  # domain separation: a delete signature signs nothing else
PUBLIC_KEY_BYTES = 32
# Proofs one tombstone carries: one per delete of the key that it joins. Deleting one key again
# and again is rare; a peer's record with more is refused rather than kept growing.
MAX_PROOFS = 64


@dataclass(frozen=True, slots=True)
class DeleteProof:
    """One node's signed statement: "I deleted this key for `actor`, having seen `seen`"."""

    node: str
    key: bytes  # the node's Ed25519 public key
    hlc: int
    reason: str
    actor: str
    seen: VersionVector
    sig: bytes

    @staticmethod
    def signed_bytes(fingerprint: bytes, node: str, key: bytes, hlc: int, reason: str,
                     actor: str, seen: VersionVector) -> bytes:
        data: bytes = msgpack.packb([_CONTEXT, fingerprint, node, key, hlc, reason, actor,
                                     seen.to_obj()], use_bin_type=True)
        return data

    @classmethod
    def make(cls, identity: NodeIdentity, fingerprint: bytes, hlc: int, reason: str, actor: str,
             seen: VersionVector) -> DeleteProof:
        """The proof of a delete done here, signed with this node's identity."""
        key = identity.public_key
        body = cls.signed_bytes(fingerprint, identity.node_id, key, hlc, reason, actor, seen)
        return cls(identity.node_id, key, hlc, reason, actor, seen, identity.sign(body))

    def holds(self, fingerprint: bytes) -> bool:
        """True if the signature is the named key's over this delete of `fingerprint`."""
        body = self.signed_bytes(fingerprint, self.node, self.key, self.hlc, self.reason,
                                 self.actor, self.seen)
        return verify_signature(self.key, self.sig, body)

    def to_obj(self) -> list[object]:
        return [self.node, self.key, self.hlc, self.reason, self.actor, self.seen.to_obj(),
                self.sig]

    @classmethod
    def from_obj(cls, obj: Any) -> DeleteProof:
        """Inverse of to_obj; StoreError naming what is malformed."""
        if not isinstance(obj, list) or len(obj) != 7:
            raise StoreError("delete proof must be [node, key, hlc, reason, actor, seen, sig]")
        node, key, hlc, reason, actor, seen, sig = obj
        if (not isinstance(node, str) or not isinstance(reason, str) or not isinstance(actor, str)
                or not isinstance(hlc, int) or isinstance(hlc, bool)
                or not isinstance(key, bytes) or len(key) != PUBLIC_KEY_BYTES
                or not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES):
            raise StoreError("delete proof fields have the wrong types or sizes")
        try:
            vector = VersionVector.from_obj(seen)
        except CrdtError as exc:
            raise StoreError(f"delete proof version vector is malformed: {exc}") from None
        return cls(node, key, hlc, reason, actor, vector, sig)


def joined(a: tuple[DeleteProof, ...], b: tuple[DeleteProof, ...]) -> tuple[DeleteProof, ...]:
    """The union of two proof sets, in one canonical order (by signature) on every node."""
    if not b or a == b:
        return a
    if not a:
        return b
    return tuple(sorted({p.sig: p for p in (*a, *b)}.values(), key=lambda p: p.sig))
