"""The checks a record copied by a snapshot bootstrap passes before it is stored as it came.

A snapshot copies a peer's stored bytes without decoding the certificate (that is what makes
it fast: ~5 us a record, against ~60 us to decode and index one). What is checked is what the
node itself relies on when it later reads, serves, joins or re-sends the record:

- its size is within `max_record_bytes(limits)`;
- it is the canonical msgpack list [format, fingerprint, certificate, vv, tombstone] of this
  record format (re-packing it gives the same bytes, so its Merkle leaf is what every other
  node computes for that state);
- the fingerprint is 16, 20 or 32 bytes; the version vector is non-empty and within
  MAX_VV_ENTRIES and MAX_VV_COUNTER; a tombstone is well formed and its texts and vectors
  bounded, and a standing delete carries a delete proof that verifies for this fingerprint
  (meshkp/keys/deleteproof.py, as for a push); a record has a certificate or a tombstone;
- the certificate is a sound OpenPGP packet stream (every header parses, every body fits),
  whose first packet is a public key whose fingerprint is the record's fingerprint, with every
  packet within `packet_bytes`, every user ID within `uid_bytes` and the whole within
  `key_bytes`.

What is not checked: signatures (as for every anti-entropy record under the default
verify_peer_records = "push"; a node that wants them verified sets "all", which makes the
bootstrap pull and verify every record instead of copying), and that the peer's index
entries match the records (they are checked to be well-formed entries only). A peer holding
the cluster key is trusted for that much, as it is for anti-entropy; garbage is refused.
"""

from __future__ import annotations

import hashlib

import msgpack

from crdt.errors import CrdtError
from crdt.vclock import VersionVector
from meshkp.errors import InvalidPeerRecord, MeshkpError, StoreError
from meshkp.keys.record import RECORD_FORMAT, Tombstone
from meshkp.limits import Limits
from meshkp.openpgp.framing import packet_header
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.replication.validate import (
    MAX_ACTOR_CHARS,
    MAX_REASON_CHARS,
    MAX_VV_COUNTER,
    MAX_VV_ENTRIES,
    check_delete_proofs,
    max_record_bytes,
    peer_fields,
)
from meshkp.store.layout import FINGERPRINT_LENGTHS


def check_snapshot_record(data: bytes, limits: Limits) -> tuple[bytes, bool, bool]:
    """(fingerprint, live, deleted) of a copied record; InvalidPeerRecord naming what is wrong."""
    try:
        return _checked(data, limits)
    except InvalidPeerRecord:
        raise
    except Exception as exc:  # a peer's bytes: a shape the checks did not foresee is a refusal
        raise InvalidPeerRecord(f"record does not check: {exc!r}") from None


def _checked(data: bytes, limits: Limits) -> tuple[bytes, bool, bool]:
    if len(data) > max_record_bytes(limits):
        raise InvalidPeerRecord(f"record of {len(data)} bytes exceeds {max_record_bytes(limits)}")
    fields = peer_fields(data)
    fmt, fingerprint, cert, vv, tomb = fields
    if fmt != RECORD_FORMAT or type(fmt) is not int:
        raise InvalidPeerRecord(f"record format {fmt!r} is not {RECORD_FORMAT}")
    if len(fingerprint) not in FINGERPRINT_LENGTHS:
        raise InvalidPeerRecord(f"fingerprint of {len(fingerprint)} bytes")
    if msgpack.packb(fields, use_bin_type=True) != data:
        raise InvalidPeerRecord("record is not canonically encoded")
    _check_vector(vv)
    deleted = False
    if tomb is not None:
        tombstone = _check_tombstone(tomb)
        # The same rule as a pushed tombstone: a delete no node signed is refused (finding 10).
        check_delete_proofs(fingerprint, tombstone)
        deleted = tombstone.active
    elif cert is None:
        raise InvalidPeerRecord("record has neither certificate nor tombstone")
    if cert is not None:
        if not isinstance(cert, bytes):
            raise InvalidPeerRecord("record certificate must be bytes")
        _check_packets(fingerprint, cert, limits)
    return fingerprint, cert is not None and not deleted, deleted


def _check_vector(vv: object) -> None:
    try:
        vector = VersionVector.from_obj(vv)
    except (CrdtError, TypeError, ValueError) as exc:
        raise InvalidPeerRecord(f"version vector is malformed: {exc}") from None
    counters = vector.to_obj()
    if not counters:
        raise InvalidPeerRecord("empty version vector: no update produced this record")
    if len(counters) > MAX_VV_ENTRIES:
        raise InvalidPeerRecord(f"version vector of {len(counters)} entries")
    if max(counters.values()) > MAX_VV_COUNTER:
        raise InvalidPeerRecord(f"version vector counter over {MAX_VV_COUNTER}")


def _check_tombstone(tomb: object) -> Tombstone:
    try:
        tombstone = Tombstone.from_obj(tomb)
    except StoreError as exc:
        raise InvalidPeerRecord(f"tombstone is malformed: {exc}") from None
    if len(tombstone.reason) > MAX_REASON_CHARS or len(tombstone.actor) > MAX_ACTOR_CHARS:
        raise InvalidPeerRecord("tombstone reason or actor too long")
    if len(tombstone.seen) > MAX_VV_ENTRIES or len(tombstone.lifted or ()) > MAX_VV_ENTRIES:
        raise InvalidPeerRecord("tombstone version vector too large")
    return tombstone


def _check_packets(fingerprint: bytes, cert: bytes, limits: Limits) -> None:
    """Packet framing, sizes and the primary key's fingerprint, without parsing bodies."""
    view = memoryview(cert)
    position = size = 0
    primary: bytes | None = None
    try:
        while position < len(view):
            tag, header, length = packet_header(view, position, limits.packet_bytes)
            if primary is None:
                if tag != Tag.PUBLIC_KEY:
                    raise InvalidPeerRecord(f"certificate starts with packet tag {tag}, not a public key")
                primary = bytes(view[position + header:position + header + length])
            elif tag == Tag.USER_ID and length > limits.uid_bytes:
                raise InvalidPeerRecord(f"user ID of {length} bytes over uid_bytes")
            size += length + 6  # validate.py's estimate of an encoded packet, so both agree
            position += header + length
    except MeshkpError as exc:
        if isinstance(exc, InvalidPeerRecord):
            raise
        raise InvalidPeerRecord(f"certificate packets do not parse: {exc}") from None
    if primary is None:
        raise InvalidPeerRecord("certificate holds no packet")
    if size > limits.key_bytes:
        raise InvalidPeerRecord(f"certificate of ~{size} bytes over key_bytes")
    if _primary_fingerprint(primary, fingerprint) != fingerprint:
        raise InvalidPeerRecord(f"record is filed under {fingerprint.hex()} but its key is another")


def _primary_fingerprint(body: bytes, expected: bytes) -> bytes | None:
    """The fingerprint of a primary key packet body; None if it does not parse.

    v4 and v6 are hashed straight from the body (the common case, ~1 us); a v4 body with
    bytes after its key material (seen on old SKS keys) and v3 go through the parser, which
    knows where the key ends.
    """
    version = body[0] if body else 0
    if version == 4 and len(body) < 0x10000:
        quick = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
        if quick == expected:
            return quick
    elif version == 6:
        return hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body).digest()
    try:
        return parse_public_key(body).fingerprint
    except Exception:  # a peer's bytes: any parse failure is a mismatch
        return None
