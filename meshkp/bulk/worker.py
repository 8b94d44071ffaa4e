"""What a `meshkp load` worker process does: key bytes in, normalised keytext items out.

Parsing, normalising and checking self-signatures is the expensive part of a load, so it
runs in a process pool; the parent only frames, merges and writes. Each piece goes through
meshkp.openpgp.keytext, the same parser POST /pks/add uses, so a key loads exactly as it
would upload. Certificates travel back as canonical bytes, the cheapest thing to pickle.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from meshkp.errors import MeshkpError
from meshkp.keys.ingest import certificate_terms
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate, certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.keytext import KeytextItem, Rejected, iter_keytext
from meshkp.openpgp.revocation import RevocationCertificate
from meshkp.store.protocol import IndexKind, IndexTerm

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Normalised:
    """A key that survived normalisation, as canonical binary (Certificate.to_bytes)."""

    fingerprint: bytes
    data: bytes
    # Index terms and SKS digest (ingest.certificate_terms), computed here so that the
    # parent, the one serial stage of a load, does not have to. Kinds travel as their
    # one-letter values: unpickling an Enum member costs ~3 µs, 15 terms a key.
    raw_terms: tuple[tuple[str, bytes], ...]

    def certificate(self) -> Certificate:
        """The Certificate again, regrouped without re-verifying (the worker verified it)."""
        return certificate_from_packets(self.fingerprint, parse_packets(self.data))

    def terms(self) -> frozenset[IndexTerm]:
        return frozenset((_KINDS[kind], term) for kind, term in self.raw_terms)


_KINDS = {kind.value: kind for kind in IndexKind}


WorkerItem = Normalised | RevocationCertificate | Rejected


def normalise_pieces(pieces: list[bytes], limits: Limits) -> list[list[WorkerItem]]:
    """The keytext items of each binary piece, in order; never raises."""
    return [_items(piece, limits) for piece in pieces]


def _items(piece: bytes, limits: Limits) -> list[WorkerItem]:
    try:
        return [_compact(item, limits) for item in iter_keytext(piece, limits)]
    except MeshkpError as exc:
        return [Rejected(str(exc))]
    except Exception as exc:  # noqa: BLE001 - one odd key must not abort a multi-GB load
        log.exception("event=normalise_crash bytes=%d", len(piece))
        return [Rejected(f"internal error while normalising ({type(exc).__name__}); please report")]


def _compact(item: KeytextItem, limits: Limits) -> WorkerItem:
    if isinstance(item, Certificate):
        terms = tuple((kind.value, term) for kind, term in certificate_terms(item, limits))
        return Normalised(item.fingerprint, item.to_bytes(), terms)
    return item


_NUMBERS = re.compile(r"\d+")


def reason_category(reason: str) -> str:
    """The reason with its details cut off, so rejections group in the summary table."""
    head = reason.split(":", 1)[0].split(";", 1)[0]
    return _NUMBERS.sub("N", head).strip() or "unknown"
