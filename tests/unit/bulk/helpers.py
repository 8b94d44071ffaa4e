"""Small builders shared by the bulk tests: generated keys as stored records."""

from __future__ import annotations

from bench.keygen import generate_key
from meshkp.keys.record import KeyRecord
from meshkp.openpgp.keytext import parse_keytext
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import RecordWrite


def record_of(index: int) -> KeyRecord:
    (cert,) = parse_keytext(generate_key(index).data)
    return KeyRecord.new(cert, "node-a")  # type: ignore[arg-type]


def store_with(records: list[KeyRecord]) -> MemoryStore:
    store = MemoryStore()
    store.write([RecordWrite(r.fingerprint, r.encode()) for r in records])
    return store
