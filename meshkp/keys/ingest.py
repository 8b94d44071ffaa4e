"""The merge core of every write of keys: stored record + normalised upload -> RecordWrites.

Pure and synchronous: it reads through the functions it is given and returns what to write;
it never writes. The HTTP path runs it inside `AsyncStore.run_exclusive` (so two uploads of
one key cannot interleave their read-merge-write), and the bulk loader runs it on its own
batches. Parsing and signature checks happen before, in meshkp.openpgp.keytext, except for
a `PartialKey` (an upload with signatures only the stored copy can place, e.g. a third-party
certification of a user ID sent without its self-signature): it is normalised here together
with the stored copy (normalise_update), so those signatures are kept.

Per key the outcome is:
- added:     no record existed; a new record with vv {node_id: 1};
- updated:   the merged certificate has packets the stored one lacked; vv incremented;
- unchanged: the upload brought nothing new; nothing is written;
- rejected:  the stored record is deleted (a tombstone stands), the merge would exceed
             `Limits.key_bytes`, or a revocation names no stored key or does not verify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from meshkp.errors import KeyRejected, MeshkpError
from meshkp.keys.terms import index_terms, revocation_lookup_terms
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.digest import certificate_digest
from meshkp.openpgp.keytext import KeytextItem, PartialKey, Rejected
from meshkp.openpgp.normalise import merge, normalise_update
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.revocation import RevocationCertificate, apply_revocation
from meshkp.record import KeyRecord
from meshkp.store.protocol import IndexKind, IndexTerm, RecordWrite

log = logging.getLogger(__name__)

ReadRecord = Callable[[bytes], bytes | None]
TermsOf = Callable[[Certificate, Limits], frozenset[IndexTerm]]
LookupIndex = Callable[[IndexKind, bytes, int], list[bytes]]

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

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.status.value, "fingerprint": self.fingerprint}
        if self.reason:
            out["reason"] = self.reason
        if self.user_ids:
            out["user_ids"] = list(self.user_ids)
        return out


@dataclass(slots=True)
class IngestResult:
    """The writes to apply atomically, the outcome per item, and the new record states."""

    writes: list[RecordWrite] = field(default_factory=list)
    outcomes: list[KeyOutcome] = field(default_factory=list)
    records: dict[bytes, KeyRecord] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return any(o.status is not Status.REJECTED for o in self.outcomes)


def record_terms(
    record: KeyRecord | None, limits: Limits, terms: TermsOf | None = None
) -> frozenset[IndexTerm]:
    """The index terms a stored record has: none while deleted, else its lookup terms + digest."""
    if record is None:
        return frozenset()
    cert = record.live_certificate
    if cert is None:
        return frozenset()
    return (terms or certificate_terms)(cert, limits)


def certificate_terms(cert: Certificate, limits: Limits) -> frozenset[IndexTerm]:
    """Lookup terms of a live certificate, including its SKS digest (op=hget, hashquery)."""
    digest = bytes.fromhex(certificate_digest(cert))
    return index_terms(cert, limits) | {(IndexKind.SKS_DIGEST, digest)}


def user_id_strings(cert: Certificate) -> tuple[str, ...]:
    return tuple(
        body.decode("utf-8", errors="replace") for body in sorted(cert.user_ids)
    )


class _Overlay:
    """Reads through `read`, but sees the records this ingest already decided to write."""

    def __init__(self, read: ReadRecord) -> None:
        self._read = read
        self.decided: dict[bytes, KeyRecord] = {}
        self.original: dict[bytes, KeyRecord | None] = {}
        # Keys new in this ingest, by 64-bit key ID: they are not in the store's index yet, and
        # a revocation certificate later in the same upload must find them too.
        self.added_by_key_id: dict[bytes, list[bytes]] = {}

    def add_new(self, record: KeyRecord, key_id: bytes) -> None:
        self.decided[record.fingerprint] = record
        self.added_by_key_id.setdefault(key_id, []).append(record.fingerprint)

    def get(self, fingerprint: bytes) -> KeyRecord | None:
        if fingerprint in self.decided:
            return self.decided[fingerprint]
        if fingerprint not in self.original:
            data = self._read(fingerprint)
            self.original[fingerprint] = KeyRecord.decode(data) if data is not None else None
        return self.original[fingerprint]


def ingest(
    items: Iterable[KeytextItem],
    read: ReadRecord,
    lookup: LookupIndex,
    node_id: str,
    limits: Limits,
    terms: TermsOf | None = None,
) -> IngestResult:
    """Merge parsed upload items into the stored records; return the writes and outcomes.

    Several copies of one key in `items` are merged into one write. Rejected items from the
    parser pass through as rejected outcomes, in order. `terms` replaces certificate_terms:
    the bulk loader passes one that returns terms its worker processes already computed.
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
            if isinstance(item, PartialKey):
                outcome = _add_partial(item, overlay, node_id, limits)
            else:
                outcome = _add(item, overlay, node_id, limits)
            outcomes.append((position, item.fingerprint, outcome))
            if outcome.status in (Status.ADDED, Status.UPDATED):
                changed[item.fingerprint] = None
    result = IngestResult()
    for fingerprint in changed:
        before = overlay.original.get(fingerprint)
        after = overlay.decided[fingerprint]
        was_live = before is not None and not before.deleted
        result.writes.append(
            RecordWrite(
                fingerprint=fingerprint,
                record=after.encode(),
                old_terms=record_terms(before, limits, terms),
                new_terms=record_terms(after, limits, terms),
                counters={KEYS_COUNTER: 1} if not was_live and not after.deleted else {},
            )
        )
        result.records[fingerprint] = after
    # A key uploaded twice in one request is "added" once; later copies report the final state.
    result.outcomes = [_final(o, fp, overlay) for _, fp, o in outcomes]
    return result


def _final(outcome: KeyOutcome, fingerprint: bytes | None, overlay: _Overlay) -> KeyOutcome:
    if fingerprint is None or outcome.status is Status.REJECTED:
        return outcome
    record = overlay.get(fingerprint)
    cert = record.live_certificate if record is not None else None
    if cert is None:
        return outcome
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
        overlay.add_new(KeyRecord.new(cert, node_id), _key_id(cert))
        return KeyOutcome(Status.ADDED, fingerprint_hex)
    if stored.deleted:
        return KeyOutcome(Status.REJECTED, fingerprint_hex, _deleted_reason(stored))
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


def _key_id(cert: Certificate) -> bytes:
    """The 64-bit key ID (RFC 9580 §5.5.4): cut from a v4/v6 fingerprint, parsed for v3."""
    if len(cert.fingerprint) == 20:
        return cert.fingerprint[-8:]
    if len(cert.fingerprint) == 32:
        return cert.fingerprint[:8]
    return parse_public_key(cert.primary.packet.body).key_id


def _add_partial(item: PartialKey, overlay: _Overlay, node_id: str, limits: Limits) -> KeyOutcome:
    """_add for an upload with orphaned signatures: normalised together with the stored copy."""
    stored = overlay.get(item.fingerprint)
    if stored is not None and stored.deleted:
        return KeyOutcome(Status.REJECTED, item.fingerprint.hex().upper(), _deleted_reason(stored))
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
        return None, KeyOutcome(Status.REJECTED, issuer, deleted_reason)
    if not candidates:
        reason = (
            f"revocation certificate for key {issuer or '(unnamed)'}, which is not on this "
            "server; upload the key first"
        )
    else:
        reason = f"revocation certificate does not verify against the stored key {issuer}"
    return None, KeyOutcome(Status.REJECTED, issuer, reason)
