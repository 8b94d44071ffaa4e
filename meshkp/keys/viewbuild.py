"""The index view of a stored key, built from the stored binary form.

A stored key is already normalised, so its packets regroup into a `Certificate` without
checks; meshkp.openpgp.index derives the view from it. The key service calls this once per
stored state (in an executor for big keys) and caches the view with the key.
"""

from __future__ import annotations

from meshkp.openpgp.certificate import certificate_from_packets
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.index import key_view
from meshkp.openpgp.keyview import KeyView


def build_view(fingerprint: bytes, binary: bytes) -> KeyView:
    """The KeyView of a stored (already normalised) certificate."""
    return key_view(certificate_from_packets(fingerprint, parse_packets(binary)))
