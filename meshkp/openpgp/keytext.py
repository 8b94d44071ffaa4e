"""Parse an upload (`keytext` of POST /pks/add, or a keyring file) into normalised keys.

An upload is armored (one or more `BEGIN PGP` blocks) or binary, and each stream holds
any number of transferable keys (RFC 9580 §10.1). Each armored block is split on its own:
a revocation certificate in its own block must not attach to the key of the block before.

Every key comes back as a `Certificate` or a `Rejected` with an operator-facing reason, or
as a `PartialKey` when the upload holds signatures that only a stored copy of the key can
place (ingest then normalises it together with that copy); signatures that stand before the
first key of a stream come back as
`RevocationCertificate`s (ingest merges them into the stored key they name) or as
`Rejected`. A stream that cannot be framed at all (bad armor, truncated packet) raises
`OpenPGPError`: the upload is malformed and nothing of it should be stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from meshkp.errors import KeyRejected, LimitExceeded, MeshkpError
from meshkp.limits import Limits
from meshkp.openpgp.armor import dearmor, is_armored
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.framing import iter_packets
from meshkp.openpgp.grouping import group_packets
from meshkp.openpgp.normalise import normalise_grouped
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.revocation import RevocationCertificate, parse_revocation

log = logging.getLogger(__name__)

SECRET_KEY_REASON = "secret key material; upload the public key only"
_SILENT = frozenset({Tag.TRUST, Tag.MARKER, Tag.PADDING})


@dataclass(frozen=True, slots=True)
class Rejected:
    """A key (or stray packet) of the upload that is not stored, and why."""

    reason: str
    fingerprint: str = ""  # uppercase hex, '' when the key could not be identified


@dataclass(frozen=True, slots=True)
class PartialKey:
    """A key whose upload holds signatures normalising it alone would lose, and its raw packets.

    Those are third-party signatures whose component had no valid self-signature in the
    upload: a user ID sent with only someone's new certification on it (the signer's export
    minus the self-signature), or a key with no valid self-signature at all. A stored copy
    of the key can keep them: ingest calls normalise_update(stored, packets). Without a
    stored copy, `alone` is the outcome. Rare (no key of the corpus or of debian-keyring is
    one), so the common path (new keys, bulk loads) keeps its compact Certificate.
    """

    fingerprint: bytes
    packets: tuple[Packet, ...]
    alone: Certificate | Rejected  # normalise(packets), or why it was rejected


KeytextItem = Certificate | PartialKey | RevocationCertificate | Rejected


@dataclass(frozen=True, slots=True)
class TransferableKey:
    """The raw packets of one key as uploaded; `secret` if it began with a secret key packet."""

    packets: tuple[Packet, ...]
    secret: bool = False


def streams(data: bytes) -> list[bytes]:
    """The binary streams of an upload: each armored block, or the whole input if binary."""
    return dearmor(data) if is_armored(data) else [data]


def split_stream(packets: Iterable[Packet]) -> Iterator[TransferableKey | Packet]:
    """Split one stream into transferable keys; packets before the first key come out bare."""
    current: list[Packet] | None = None
    secret = False
    for packet in packets:
        if packet.tag in (Tag.PUBLIC_KEY, Tag.SECRET_KEY):
            if current is not None:
                yield TransferableKey(tuple(current), secret)
            current, secret = [packet], packet.tag == Tag.SECRET_KEY
        elif current is None:
            yield packet
        else:
            current.append(packet)
    if current is not None:
        yield TransferableKey(tuple(current), secret)


def iter_keytext(data: bytes, limits: Limits | None = None) -> Iterator[KeytextItem]:
    """Yield each key of an upload as it is normalised; raises OpenPGPError on unframeable input."""
    limits = limits or Limits()
    for stream in streams(data):
        stray_reported = False
        # Framed lazily: parse_keytext stops at Limits.upload_keys without holding every
        # packet of the upload (millions of 2-byte ones fit in upload_bytes).
        for item in split_stream(iter_packets(stream)):
            if isinstance(item, TransferableKey):
                yield _key(item, limits)
            elif item.tag == Tag.SIGNATURE:
                yield _bare_signature(item)
            elif item.tag not in _SILENT and not stray_reported:
                stray_reported = True
                yield Rejected(
                    f"packet of tag {item.tag} before the first public key was ignored; "
                    "a key must start with a public key packet"
                )


class ParsedKeys(list[KeytextItem]):
    """The items of one upload, and the CPU their parse took (charged to the client)."""

    cpu_ms: float = 0.0


def parse_keytext(data: bytes, limits: Limits | None = None) -> ParsedKeys:
    """Every key of an upload (see iter_keytext); LimitExceeded past Limits.upload_keys items.

    Verification stops once the parse has used Limits.upload_cpu_ms of this thread's CPU: the
    keys after it are not verified, and one Rejected item says so (red-team finding 5).
    """
    limits = limits or Limits()
    items = ParsedKeys()
    started = time.thread_time()
    budget_s = limits.upload_cpu_ms / 1000
    for item in iter_keytext(data, limits):
        if len(items) == limits.upload_keys:
            raise LimitExceeded(
                f"upload holds more than {limits.upload_keys} keys (config limits.upload_keys); "
                "send fewer keys per upload, or load a keyring with `meshkp load`",
                limit="upload_keys",
            )
        items.append(item)
        if time.thread_time() - started > budget_s:
            log.warning("event=upload_cpu_exhausted keys=%d budget_ms=%d", len(items),
                        limits.upload_cpu_ms)
            items.append(Rejected(
                f"the keys after the first {len(items)} were not verified: this upload used "
                f"its CPU budget of {limits.upload_cpu_ms} ms (limits.upload_cpu_ms); send "
                "them in another upload"))
            break
    items.cpu_ms = (time.thread_time() - started) * 1000
    return items


def _key(key: TransferableKey, limits: Limits) -> Certificate | PartialKey | Rejected:
    if key.secret:
        return Rejected(SECRET_KEY_REASON, _secret_fingerprint(key.packets[0]))
    try:
        grouped = group_packets(key.packets, limits)
    except KeyRejected as exc:
        return Rejected(exc.reason, exc.fingerprint)
    except MeshkpError as exc:
        return Rejected(str(exc))
    alone: Certificate | Rejected
    try:
        alone = normalise_grouped(grouped, limits)
    except KeyRejected as exc:
        alone = Rejected(exc.reason, exc.fingerprint)
    except MeshkpError as exc:
        alone = Rejected(str(exc))
    if grouped.orphans:
        return PartialKey(grouped.primary.fingerprint, key.packets, alone)
    return alone


def _bare_signature(packet: Packet) -> RevocationCertificate | Rejected:
    try:
        return parse_revocation(packet)
    except MeshkpError as exc:
        return Rejected(str(exc))


def _secret_fingerprint(packet: Packet) -> str:
    # A v4 secret key packet starts with the public key fields; parse_public_key cuts the
    # secret part off as trailing bytes, so the fingerprint can name the key in the reply.
    try:
        return parse_public_key(packet.body).fingerprint.hex().upper()
    except MeshkpError:
        return ""
