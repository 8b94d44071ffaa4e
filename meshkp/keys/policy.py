"""What the cluster policy does to the key data, as pure values: the blacklist filter and the
record a conflict resolution writes.

The control plane (meshkp/control) decides the policy; this module is below it and knows
only the values it needs, so the key service and the commit path stay testable alone.

The blacklist is a *view* filter, not a write. Records of a blacklisted fingerprint stay in
the store and keep replicating like any other; the node hides them from every lookup (get,
index, hget, hashquery) and refuses uploads of them. So the stored data, and the Merkle root,
do not depend on the policy version at all: a node behind in policy version neither poisons a
node ahead (what it pushes is stored, hidden there) nor is poisoned by it (nothing is removed
that it would fetch back), and nodes at the same policy version serve the same keys. Hiding
is a restriction of the key set, which commutes with the per-key join:
`visible(a ⊔ b) == visible(visible(a) ⊔ visible(b))` (tests/unit/keys/test_policy.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import nacl.signing

from crdt.vclock import VersionVector
from meshkp.keys.deleteproof import DeleteProof
from meshkp.keys.record import KeyRecord, Tombstone
from meshkp.net.identity import NodeIdentity


@dataclass(frozen=True, slots=True)
class DataPolicy:
    """The part of the cluster policy the data path applies: `version` and the blacklist."""

    version: int = 0
    blacklist: Mapping[bytes, str] = field(default_factory=dict)  # fingerprint -> reason

    def visible(self, fingerprint: bytes) -> bool:
        return fingerprint not in self.blacklist

    def refusal(self, fingerprint: bytes) -> str | None:
        """Why an upload of `fingerprint` is refused, or None if it is not blacklisted."""
        reason = self.blacklist.get(fingerprint)
        if reason is None:
            return None
        return blacklisted_reason(fingerprint, reason)


OPEN = DataPolicy()


def blacklisted_reason(fingerprint: bytes, reason: str) -> str:
    return (f"fingerprint {fingerprint.hex().upper()} is blacklisted by the cluster policy: "
            f"{reason}")


def visible_records(records: Mapping[bytes, KeyRecord], policy: DataPolicy) -> dict[bytes, KeyRecord]:
    """The records a node serves under `policy` (the filter of the module doc)."""
    return {fp: record for fp, record in records.items() if policy.visible(fp)}


def resolution_reason(conflict_id: str, keep: str) -> str:
    """The tombstone reason a keep-delete resolution writes (and its proof signs)."""
    return f"conflict {conflict_id} resolved: keep {keep}"


def resolution_proof(identity: NodeIdentity, fingerprint: bytes, keep_update: bool,
                     covers: VersionVector, hlc: int, reason: str, actor: str,
                     admin: nacl.signing.SigningKey | None = None) -> DeleteProof:
    """The proposing node's signature of a resolution (and its admin's, if one asked): for
    keep-delete, a delete that has seen `covers`; for keep-update, a lift covering it. It goes
    into the log entry, so every node writes the same signed record (resolution_record)."""
    if keep_update:
        return DeleteProof.make(identity, fingerprint, 0, "", actor, covers, admin, lift=True)
    return DeleteProof.make(identity, fingerprint, hlc, reason, actor, covers, admin)


def resolution_record(fingerprint: bytes, keep_update: bool, covers: VersionVector, hlc: int,
                      reason: str, actor: str, proof: DeleteProof | None = None) -> KeyRecord:
    """The record update a conflict resolution writes on every node: the same bytes wherever
    it is computed (it depends only on the log entry), joined into whatever the node holds.

    Keep delete: a tombstone that has seen `covers` (both sides as the resolver saw them), so
    the delete dominates every add of the conflict. Keep update: a lift covering `covers`, so
    the tombstone of the conflict no longer deletes; its stamp is 0, so the delete keeps its
    own name in the joined tombstone. Either way the version vector is `covers`: the decision
    dominates both sides, and a replica still holding the old conflict joins into it.

    With `proof` (resolution_proof, from the log entry), the tombstone carries it: peers then
    check the lift or the widened delete against it. A keep-delete takes the proof's stamp.
    """
    if keep_update:
        lift_proofs = (proof,) if proof is not None else ()
        tomb = Tombstone(VersionVector(), 0, "", "", lifted=covers, lift_proofs=lift_proofs)
    elif proof is not None:
        tomb = Tombstone(covers, proof.hlc, reason, actor, proofs=(proof,))
    else:
        tomb = Tombstone(covers, hlc, reason, actor)
    return KeyRecord(fingerprint, None, covers, tomb)
