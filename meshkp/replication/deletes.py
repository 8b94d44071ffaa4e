"""Deletes and conflicts: a tombstone written like any record state, and the conflict listing.

A delete (DELETE /cluster/keys/<fp>) is `KeyRecord.delete`: its tombstone records the version
vector this node had merged, so it wins against every add the deleter had seen, on every node
and in any merge order, and a stale node that comes back cannot resurrect the key (its state
is dominated). An add concurrent with it (neither saw the other) leaves the record in
conflict: still not served (delete-wins), listed by GET /cluster/conflicts with its id (the
same on every replica, KeyRecord.conflict.id) and the rule that applies, until the control
plane resolves it (meshkp/keys/policy.py resolution_record).

Deletes stay AP: they never wait for the control plane. So that each still reaches the audit
trail, the delete's batch also writes an entry in a durable outbox (`AUDIT_OUTBOX_PREFIX`);
the node proposes an AuditDelete for each entry once the log is reachable and removes the
entry once it is applied (at least once: a crash between the two proposes it again).

Tombstones are never garbage-collected in this version (see
docs/replication.md): dropping one before every member has merged it could resurrect the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgpack
import nacl.signing

from crdt.vclock import VersionVector
from meshkp.errors import InvalidRequest
from meshkp.keys.commit import CONFLICT_PREFIX, MergeResult
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Change
from meshkp.limits import Limits
from meshkp.net.identity import NodeIdentity
from meshkp.replication.validate import MAX_ACTOR_CHARS, MAX_REASON_CHARS
from meshkp.store.layout import FINGERPRINT_LENGTHS
from meshkp.store.protocol import RecordWrite, Store

# Extra-namespace prefix of the admin-delete audit outbox: prefix + hlc (8 bytes) + fingerprint.
AUDIT_OUTBOX_PREFIX = b"ao"


@dataclass(frozen=True, slots=True)
class PendingAudit:
    """An admin delete not yet in the audit trail."""

    key: bytes
    fingerprint: bytes
    reason: str
    actor: str
    hlc: int
    node: str


def outbox_entry(fingerprint: bytes, reason: str, actor: str, hlc: int, node: str) -> tuple[bytes, bytes]:
    key = AUDIT_OUTBOX_PREFIX + hlc.to_bytes(8, "big") + fingerprint
    value: bytes = msgpack.packb([fingerprint, reason, actor, hlc, node], use_bin_type=True)
    return key, value


def pending_audits(store: Store, limit: int) -> list[PendingAudit]:
    """The oldest `limit` outbox entries (blocking: run on the store's executor)."""
    found: list[PendingAudit] = []
    for key, value in _outbox(store):
        fingerprint, reason, actor, hlc, node = msgpack.unpackb(value, raw=False)
        found.append(PendingAudit(key, fingerprint, reason, actor, hlc, node))
        if len(found) >= limit:
            break
    return found


def _outbox(store: Store) -> Iterator[tuple[bytes, bytes]]:
    return store.iter_extra(AUDIT_OUTBOX_PREFIX)


def audited(store: Store, pending: PendingAudit) -> None:
    """Drop an outbox entry once its AuditDelete applied (the record is rewritten unchanged,
    since a store batch is per record)."""
    store.write([RecordWrite(pending.fingerprint, store.get(pending.fingerprint),
                             extra=((pending.key, None),))])


def parse_fingerprint(text: str) -> bytes:
    """Raw fingerprint bytes from hex (an optional 0x); InvalidRequest otherwise."""
    cleaned = text.strip().replace(" ", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise InvalidRequest(f"{text[:80]!r} is not a hex fingerprint") from None
    if len(raw) not in FINGERPRINT_LENGTHS:
        raise InvalidRequest(
            f"a fingerprint has 32, 40 or 64 hex digits (v3/v4/v6), got {len(cleaned)}"
        )
    return raw


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What a delete did."""

    fingerprint: bytes
    record: KeyRecord
    changed: bool
    existed: bool

    @classmethod
    def of(cls, fingerprint: bytes, result: MergeResult) -> DeleteOutcome:
        """The outcome of the committed `tombstone` decision."""
        (change,) = result.changes  # a delete counts an update: the state always changes
        record = change.after
        assert isinstance(record, KeyRecord)
        return cls(fingerprint, record, changed=True, existed=change.before is not None)


def tombstone(
    fingerprint: bytes, node_id: str, hlc: int, reason: str, actor: str, audit: bool = False,
    identity: NodeIdentity | None = None, admin: nacl.signing.SigningKey | None = None,
) -> Callable[[Store, Limits], MergeResult]:
    """The decision (for Committer.run) that tombstones `fingerprint`, known here or not,
    signed with `identity` (peers refuse unsigned deletes) and by `admin`, the key of the admin
    who asked (peers that know the admin then know it asked); with `audit`, its batch also
    queues the delete in the audit outbox."""
    if len(reason) > MAX_REASON_CHARS or len(actor) > MAX_ACTOR_CHARS:
        raise InvalidRequest(
            f"reason is limited to {MAX_REASON_CHARS} characters and actor to {MAX_ACTOR_CHARS}"
        )

    def decide(store: Store, limits: Limits) -> MergeResult:
        data = store.get(fingerprint)
        stored = KeyRecord.decode(data) if data is not None else None
        base = stored if stored is not None else KeyRecord(fingerprint, None, VersionVector())
        # The deleted state dominates the stored one (it counts one more update and keeps
        # every packet), so it is the join of the two.
        deleted = base.delete(node_id, hlc, reason, actor, identity, admin)
        extra = (outbox_entry(fingerprint, reason, actor, hlc, node_id),) if audit else ()
        return MergeResult([True], [Change(stored, deleted, deleted.encode())], extra=extra)

    return decide


def hlc_to_int(wall_ms: int, logical: int) -> int:
    """A tombstone's HLC stamp as one ordered integer: wall milliseconds, then 16 logical bits."""
    return (wall_ms << 16) | min(logical, 0xFFFF)


def conflict_fingerprints(store: Store, limit: int) -> list[bytes]:
    """Fingerprints of records in conflict, in order, at most `limit`."""
    found: list[bytes] = []
    for key, _ in store.iter_extra(CONFLICT_PREFIX):
        found.append(key[len(CONFLICT_PREFIX):])
        if len(found) >= limit:
            break
    return found


def conflict_json(record: KeyRecord, hlc_to_time: Callable[[int], float] | None = None,
                  rule: str = "delete-wins") -> dict[str, object]:
    """The /cluster/conflicts entry of a record in conflict (`rule`: the one that applies)."""
    conflict = record.conflict
    tomb = record.tombstone
    assert tomb is not None
    entry: dict[str, object] = {
        "id": conflict.id if conflict is not None else "",
        "fingerprint": record.fingerprint.hex().upper(),
        "policy": rule,
        "served": False,
        "delete": {
            "actor": tomb.actor,
            "reason": tomb.reason,
            "hlc": tomb.hlc,
            "seen": tomb.seen.to_obj(),
            # The nodes whose signatures prove the delete, each with the admin it acted for.
            "proofs": [{"node": p.node, "actor": p.actor, "hlc": p.hlc,
                        "admin_key": p.admin_key.hex() or None} for p in tomb.proofs],
        },
        "concurrent_adds": dict(conflict.unseen_adds) if conflict is not None else {},
        "vv": record.vv.to_obj(),
    }
    if hlc_to_time is not None:
        entry["delete"]["time"] = hlc_to_time(tomb.hlc)  # type: ignore[index]
    return entry
