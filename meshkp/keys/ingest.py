"""The decision of an upload or a bulk load: stored record + normalised keys -> key changes.

Pure and synchronous: it reads through the functions it is given and returns the changes to
commit; it never writes. The commit path (meshkp/keys/commit.py) runs it inside
`AsyncStore.run_exclusive` for an upload (so two uploads of one key cannot interleave their
read-merge-write) and in the bulk loader's thread for a load, and writes what it decided.
Parsing and signature checks happen before, in meshkp.openpgp.keytext (for a small upload
that comes alone, in the same commit job: meshkp/keys/parse.py `parsing_upload`), except for a
`PartialKey` (an upload with signatures only the stored copy can place, e.g. a third-party
certification of a user ID sent without its self-signature): it is normalised here together
with the stored copy (normalise_update), so those signatures are kept.

Per key the outcome is:
- added:     no record existed; a new record with vv {node_id: 1};
- updated:   the merged certificate has packets the stored one lacked; vv incremented;
- unchanged: the upload brought nothing new; nothing is written, unless `readd` (an HKP
             upload, POST /pks/add): then the key is *re-added*, one update counted by
             node_id with the same packets, so that a delete made elsewhere concurrently
             meets it as a conflict (decided by the cluster's rule, with an audit entry)
             instead of silently erasing a key the client was just told is stored
             (docs/replication.md "Re-uploads that race a delete");
- rejected:  the stored record is deleted (a tombstone stands), the merge would exceed
             `Limits.key_bytes`, a revocation names no stored key or does not verify, or
             the cluster policy refuses the fingerprint (`refuse`: the blacklist; then the
             outcome is `refused`, which the HTTP layer answers 403).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from meshkp.errors import KeyRejected, MeshkpError
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Change, KeyState, Prepared
from meshkp.keys.terms import index_terms, revocation_lookup_terms
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.digest import certificate_digest
from meshkp.openpgp.keytext import KeytextItem, PartialKey, Rejected
from meshkp.openpgp.normalise import merge, normalise_update
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.revocation import RevocationCertificate, apply_revocation
from meshkp.store.protocol import IndexKind, IndexTerm, RecordWrite, Store

log = logging.getLogger(__name__)

ReadRecord = Callable[[bytes], bytes | None]
LookupIndex = Callable[[IndexKind, bytes, int], list[bytes]]
# Why the policy refuses a fingerprint, or None (meshkp.keys.policy.DataPolicy.refusal).
Refuse = Callable[[bytes], str | None]

KEYS_COUNTER = "keys"
# Candidate keys a revocation's issuer key ID may name. Key IDs collide only by accident or
# attack; the signature is verified against each candidate, so a few are plenty.
_REVOCATION_CANDIDATES = 8
# Same fingerprint, different key packet: possible only for v3 keys, whose fingerprint is
# MD5(n || e) without the creation time (RFC 4880 §12.2). A certificate has one primary key
# packet, so the two cannot be merged; the stored one stays.
OTHER_KEY_PACKET = (
    "its key packet differs from the stored key packet with the same (v3) fingerprint; "
    "the stored key is kept, a v3 key cannot be replaced by re-dating it"
)


class Status(str, Enum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class KeyOutcome:
    """What happened to one key (or revocation certificate) of an upload."""

    status: Status
    fingerprint: str = ""  # uppercase hex; '' when the item could not be identified
    reason: str = ""  # why it was rejected (operator-facing)
    user_ids: tuple[str, ...] = ()  # of the stored result, for the reply
    refused: bool = False  # rejected by the cluster policy (blacklisted), not for its content
    deleted: bool = False  # rejected because an operator deleted the key (its tombstone stays)

    @property
    def rejection(self) -> str:
        """Why, as a bounded metrics label: blacklisted, deleted or invalid (its content)."""
        return "blacklisted" if self.refused else "deleted" if self.deleted else "invalid"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.status.value, "fingerprint": self.fingerprint}
        if self.reason:
            out["reason"] = self.reason
        if self.user_ids:
            out["user_ids"] = list(self.user_ids)
        return out


@dataclass(slots=True)
class IngestResult:
    """What an upload decided (the changes and the outcome per item) and, once committed, its writes."""

    changes: list[Change] = field(default_factory=list)
    outcomes: list[KeyOutcome] = field(default_factory=list)
    writes: list[RecordWrite] = field(default_factory=list)  # filled by the commit

    @property
    def records(self) -> dict[bytes, KeyState]:
        """The new state of each changed key, by fingerprint."""
        return {change.fingerprint: change.after for change in self.changes}

    @property
    def accepted(self) -> bool:
        return any(o.status is not Status.REJECTED for o in self.outcomes)


def record_terms(record: KeyRecord | None, limits: Limits) -> frozenset[IndexTerm]:
    """The index terms a stored record has: none while deleted, else its lookup terms + digest."""
    if record is None:
        return frozenset()
    cert = record.live_certificate
    if cert is None:
        return frozenset()
    return certificate_terms(cert, limits)


def certificate_terms(cert: Certificate, limits: Limits) -> frozenset[IndexTerm]:
    """Lookup terms of a live certificate, including its SKS digest (op=hget, hashquery)."""
    digest = bytes.fromhex(certificate_digest(cert))
    return index_terms(cert, limits) | {(IndexKind.SKS_DIGEST, digest)}


def user_id_strings(cert: Certificate) -> tuple[str, ...]:
    return tuple(
        body.decode("utf-8", errors="replace") for body in sorted(cert.user_ids)
    )


class _Overlay:
    """Reads through `read`, but sees the states this ingest already decided to write."""

    def __init__(self, read: ReadRecord) -> None:
        self._read = read
        self.decided: dict[bytes, KeyState] = {}
        self.original: dict[bytes, KeyRecord | None] = {}
        # Keys new in this ingest, by 64-bit key ID: they are not in the store's index yet, and
        # a revocation certificate later in the same upload must find them too.
        self.added_by_key_id: dict[bytes, list[bytes]] = {}

    def add_new(self, state: KeyState, key_id: bytes) -> None:
        self.decided[state.fingerprint] = state
        self.added_by_key_id.setdefault(key_id, []).append(state.fingerprint)

    def get(self, fingerprint: bytes) -> KeyRecord | None:
        state = self.state(fingerprint)
        return state.key_record() if isinstance(state, Prepared) else state

    def state(self, fingerprint: bytes) -> KeyState | None:
        """The decided or stored state, without decoding a Prepared one."""
        if fingerprint in self.decided:
            return self.decided[fingerprint]
        if fingerprint not in self.original:
            data = self._read(fingerprint)
            self.original[fingerprint] = KeyRecord.decode(data) if data is not None else None
        return self.original[fingerprint]


def ingest(
    items: Iterable[KeytextItem | Prepared],
    read: ReadRecord,
    lookup: LookupIndex,
    node_id: str,
    limits: Limits,
    refuse: Refuse | None = None,
    readd: bool = False,
) -> IngestResult:
    """Merge parsed upload items into the stored records; return the changes and outcomes.

    Several copies of one key in `items` are merged into one change. Rejected items from the
    parser pass through as rejected outcomes, in order. A Prepared item (bulk/worker.py) is a
    normalised key prepared as `KeyRecord.new(cert, node_id)`: a key not stored yet is
    written from it as it is, without parsing it again here (its outcome then names no user IDs).
    """
    overlay = _Overlay(read)
    outcomes: list[tuple[int, bytes | None, KeyOutcome]] = []
    changed: dict[bytes, None] = {}  # fingerprints to write, in first-seen order
    for position, item in enumerate(items):
        if isinstance(item, Rejected):
            outcome = KeyOutcome(Status.REJECTED, item.fingerprint, item.reason)
            outcomes.append((position, None, outcome))
        elif isinstance(item, RevocationCertificate):
            fingerprint, outcome = _revoke(item, overlay, lookup, node_id)
            outcomes.append((position, fingerprint, outcome))
            if fingerprint is not None and outcome.status is Status.UPDATED:
                changed[fingerprint] = None
        else:
            refusal = refuse(item.fingerprint) if refuse is not None else None
            if refusal is not None:
                outcome = KeyOutcome(Status.REJECTED, item.fingerprint.hex().upper(), refusal,
                                     refused=True)
            elif isinstance(item, Prepared):
                outcome = _add_prepared(item, overlay, node_id, limits)
            elif isinstance(item, PartialKey):
                outcome = _add_partial(item, overlay, node_id, limits)
            else:
                outcome = _add(item, overlay, node_id, limits)
            outcomes.append((position, item.fingerprint, outcome))
            readded = (readd and outcome.status is Status.UNCHANGED
                       and _readd(item.fingerprint, overlay, node_id))
            if outcome.status in (Status.ADDED, Status.UPDATED) or readded:
                changed[item.fingerprint] = None
    result = IngestResult()
    for fingerprint in changed:
        after = overlay.decided[fingerprint]
        encoded = after.encoded if isinstance(after, Prepared) else after.encode()
        result.changes.append(Change(overlay.original.get(fingerprint), after, encoded))
    # A key uploaded twice in one request is "added" once; later copies report the final state.
    result.outcomes = [_final(o, fp, overlay) for _, fp, o in outcomes]
    return result


def uploading(
    items: Sequence[KeytextItem | Prepared], node_id: str, refuse: Refuse | None = None,
    readd: bool = False,
) -> Callable[[Store, Limits], IngestResult]:
    """The decision (for Committer.run/apply) that merges `items` as an upload by `node_id`,
    refusing the fingerprints `refuse` names; with `readd`, a key found unchanged is re-added."""
    return lambda store, limits: ingest(items, store.get, store.lookup, node_id, limits, refuse,
                                        readd)


def _readd(fingerprint: bytes, overlay: _Overlay, node_id: str) -> bool:
    """Count a re-upload of a stored, live, unchanged key as one update (once per upload)."""
    if fingerprint in overlay.decided:
        return True  # this upload already writes the key (added or bumped by an earlier copy)
    stored = overlay.get(fingerprint)
    if stored is None or stored.live_certificate is None:
        return False
    overlay.decided[fingerprint] = _bump(stored, stored.live_certificate, node_id)
    return True


def _final(outcome: KeyOutcome, fingerprint: bytes | None, overlay: _Overlay) -> KeyOutcome:
    if fingerprint is None or outcome.status is Status.REJECTED:
        return outcome
    state = overlay.state(fingerprint)
    if not isinstance(state, KeyRecord) or state.live_certificate is None:
        return outcome  # a Prepared state is not decoded just to name its user IDs
    cert = state.live_certificate
    return KeyOutcome(outcome.status, outcome.fingerprint, outcome.reason, user_id_strings(cert))


def _deleted_reason(record: KeyRecord) -> str:
    tomb = record.tombstone
    assert tomb is not None
    return (
        f"deleted by {tomb.actor or 'an operator'}: {tomb.reason or 'no reason given'}; "
        "re-upload is refused while the deletion stands, contact the operator"
    )


def _add(cert: Certificate, overlay: _Overlay, node_id: str, limits: Limits) -> KeyOutcome:
    fingerprint_hex = cert.fingerprint.hex().upper()
    stored = overlay.get(cert.fingerprint)
    if stored is None:
        new = KeyRecord.new(cert, node_id)
        overlay.add_new(new, _key_id(cert.fingerprint, lambda: new))
        return KeyOutcome(Status.ADDED, fingerprint_hex)
    if stored.deleted:
        return KeyOutcome(Status.REJECTED, fingerprint_hex, _deleted_reason(stored), deleted=True)
    if stored.certificate is None:  # a delete of a key never seen here; deleted covers it
        return KeyOutcome(Status.REJECTED, fingerprint_hex, "no certificate stored")
    if cert.primary.packet != stored.certificate.primary.packet:
        return KeyOutcome(Status.REJECTED, fingerprint_hex, OTHER_KEY_PACKET)
    try:
        merged = merge(stored.certificate, cert, limits)
    except MeshkpError as exc:
        return KeyOutcome(Status.REJECTED, fingerprint_hex, f"cannot merge with stored copy: {exc}")
    if merged == stored.certificate:
        return KeyOutcome(Status.UNCHANGED, fingerprint_hex)
    size = len(merged.to_bytes())
    if size > limits.key_bytes:
        return KeyOutcome(
            Status.REJECTED, fingerprint_hex,
            f"merged key would be {size} bytes, over the key_bytes limit ({limits.key_bytes})",
        )
    overlay.decided[cert.fingerprint] = _bump(stored, merged, node_id)
    return KeyOutcome(Status.UPDATED, fingerprint_hex)


def _add_prepared(item: Prepared, overlay: _Overlay, node_id: str, limits: Limits) -> KeyOutcome:
    """_add for a key prepared elsewhere: stored as it is when new, else merged as a certificate."""
    if overlay.state(item.fingerprint) is None:
        overlay.add_new(item, _key_id(item.fingerprint, item.key_record))
        return KeyOutcome(Status.ADDED, item.fingerprint.hex().upper())
    certificate = item.key_record().certificate
    assert certificate is not None  # prepared as KeyRecord.new(certificate, node_id)
    return _add(certificate, overlay, node_id, limits)


def _key_id(fingerprint: bytes, record: Callable[[], KeyRecord]) -> bytes:
    """The 64-bit key ID (RFC 9580 §5.5.4): cut from a v4/v6 fingerprint, parsed for v3."""
    if len(fingerprint) == 20:
        return fingerprint[-8:]
    if len(fingerprint) == 32:
        return fingerprint[:8]
    certificate = record().certificate
    assert certificate is not None
    return parse_public_key(certificate.primary.packet.body).key_id


def _add_partial(item: PartialKey, overlay: _Overlay, node_id: str, limits: Limits) -> KeyOutcome:
    """_add for an upload with orphaned signatures: normalised together with the stored copy."""
    stored = overlay.get(item.fingerprint)
    if stored is not None and stored.deleted:
        return KeyOutcome(Status.REJECTED, item.fingerprint.hex().upper(), _deleted_reason(stored),
                          deleted=True)
    if stored is None or stored.live_certificate is None:
        if isinstance(item.alone, Rejected):
            return KeyOutcome(Status.REJECTED, item.alone.fingerprint, item.alone.reason)
        return _add(item.alone, overlay, node_id, limits)
    # Start from stored + what the upload validly brought on its own, so that only the
    # orphaned signatures get checked again (normalise_update trusts the base's).
    base = stored.live_certificate
    if not isinstance(item.alone, Rejected):
        if item.alone.primary.packet != base.primary.packet:
            return KeyOutcome(Status.REJECTED, item.fingerprint.hex().upper(), OTHER_KEY_PACKET)
        base = merge(base, item.alone, limits)
    try:
        updated = normalise_update(base, item.packets, limits)
    except MeshkpError as exc:
        reason = exc.reason if isinstance(exc, KeyRejected) else str(exc)
        return KeyOutcome(Status.REJECTED, item.fingerprint.hex().upper(), reason)
    return _add(updated, overlay, node_id, limits)


def _bump(stored: KeyRecord, certificate: Certificate, node_id: str) -> KeyRecord:
    """The stored record with a new certificate, counting one update by node_id."""
    return KeyRecord(stored.fingerprint, certificate, stored.vv.increment(node_id), stored.tombstone)


def _revoke(
    revocation: RevocationCertificate, overlay: _Overlay, lookup: LookupIndex, node_id: str
) -> tuple[bytes | None, KeyOutcome]:
    issuer = revocation.issuer
    candidates: list[bytes] = []
    for kind, term in revocation_lookup_terms(revocation):
        if kind is IndexKind.FINGERPRINT:
            new = [term] if term in overlay.decided else []
        else:
            new = overlay.added_by_key_id.get(term, [])
        for fingerprint in [*lookup(kind, term, _REVOCATION_CANDIDATES), *new]:
            if fingerprint not in candidates:
                candidates.append(fingerprint)
    deleted_reason = ""
    for fingerprint in candidates:
        stored = overlay.get(fingerprint)
        if stored is None or stored.certificate is None:
            continue
        if stored.deleted:
            deleted_reason = _deleted_reason(stored)
            continue
        revoked = apply_revocation(stored.certificate, revocation)
        if revoked is None:
            continue
        fingerprint_hex = fingerprint.hex().upper()
        if revoked == stored.certificate:
            return fingerprint, KeyOutcome(Status.UNCHANGED, fingerprint_hex)
        overlay.decided[fingerprint] = _bump(stored, revoked, node_id)
        return fingerprint, KeyOutcome(Status.UPDATED, fingerprint_hex)
    if deleted_reason:
        return None, KeyOutcome(Status.REJECTED, issuer, deleted_reason, deleted=True)
    if not candidates:
        reason = (
            f"revocation certificate for key {issuer or '(unnamed)'}, which is not on this "
            "server; upload the key first"
        )
    else:
        reason = f"revocation certificate does not verify against the stored key {issuer}"
    return None, KeyOutcome(Status.REJECTED, issuer, reason)
