"""What a `meshkp load` worker process does: key bytes in, prepared key states out.

Parsing, normalising and checking self-signatures is the expensive part of a load, so it
runs in the worker pool (meshkp/keys/pool.py); the parent only frames, merges and writes. Each
piece goes through meshkp.openpgp.keytext, the same parser POST /pks/add uses, so a key loads
exactly as it would upload. A normalised key comes back `Prepared` (meshkp/keys/state.py) as
the new record it becomes when the store does not hold it yet: canonical bytes and index terms
computed here, so the parent, the one serial stage of a load, stores it without parsing it.
"""

from __future__ import annotations

import logging
import re

from meshkp.errors import MeshkpError
from meshkp.keys.ingest import certificate_terms
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Prepared, Wire
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.keytext import KeytextItem, PartialKey, Rejected, iter_keytext
from meshkp.openpgp.revocation import RevocationCertificate

log = logging.getLogger(__name__)

# What a worker returns per item: a prepared key in its wire form, or an item that needs the
# stored copy (a revocation, a key with orphaned signatures) or was rejected, as it is.
WorkerItem = Wire | PartialKey | RevocationCertificate | Rejected
Item = Prepared | PartialKey | RevocationCertificate | Rejected


def normalise_pieces(pieces: list[bytes], limits: Limits, node_id: str) -> list[list[WorkerItem]]:
    """The items of each binary piece, in order (new keys as KeyRecord.new(.., node_id)); never raises."""
    return [_items(piece, limits, node_id) for piece in pieces]


def received(items: list[WorkerItem]) -> list[Item]:
    """The worker's items as the parent uses them (prepared keys out of their wire form)."""
    return [Prepared.from_wire(item) if isinstance(item, tuple) else item for item in items]


def _items(piece: bytes, limits: Limits, node_id: str) -> list[WorkerItem]:
    try:
        return [_compact(item, limits, node_id) for item in iter_keytext(piece, limits)]
    except MeshkpError as exc:
        return [Rejected(str(exc))]
    except Exception as exc:  # noqa: BLE001 - one odd key must not abort a multi-GB load
        log.exception("event=normalise_crash bytes=%d", len(piece))
        return [Rejected(f"internal error while normalising ({type(exc).__name__}); please report")]


def _compact(item: KeytextItem, limits: Limits, node_id: str) -> WorkerItem:
    if isinstance(item, Certificate):
        record = KeyRecord.new(item, node_id)
        return Prepared.of(record, certificate_terms(item, limits)).to_wire()
    return item


_NUMBERS = re.compile(r"\d+")


def reason_category(reason: str) -> str:
    """The reason with its details cut off, so rejections group in the summary table."""
    head = reason.split(":", 1)[0].split(";", 1)[0]
    return _NUMBERS.sub("N", head).strip() or "unknown"
