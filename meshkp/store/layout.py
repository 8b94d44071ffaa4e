"""The LevelDB key space: one namespace byte, then a key whose prefix scans are exact.

    namespace  key                                                     value
    ---------  ------------------------------------------------------  -----------------------
    b"m"       b"m" + name (ASCII)                                     meta; b"m" b"schema" -> b"1"
    b"r"       b"r" + fingerprint                                      encoded record
    b"i"       b"i" + kind (1 byte) + len(term) (u16 BE) + term + fpr  b"" (presence is the entry)
    b"c"       b"c" + counter name (UTF-8)                             signed int64, big-endian
    b"x"       b"x" + caller key                                       caller value (Merkle nodes, ...)
               b"x" + CONTROL_PREFIX + ...                             the control plane's Raft log

Why each choice:
- One leading byte per namespace keeps each kind of data contiguous on disk, so a scan of
  one namespace never reads another, and caller keys (`RecordWrite.extra`) can never
  collide with records or indexes whatever bytes the caller picks.
- An index key carries the term's length before the term. Without it the scan for the term
  b"ab" would also match the entries of b"abc" (b"ab" is a byte prefix of b"abc"); with it,
  b"i" + kind + len + term is an exact prefix of one term's entries only, and whatever
  follows it is the fingerprint, whatever its length (16, 20 or 32 bytes).
- Fingerprints are stored raw, so bytewise key order is fingerprint order: lookups and
  `iter_records` return fingerprints sorted, and LevelDB and MemoryStore agree on it.
- Counters are fixed-width so a counter update is one 8-byte put in the record's batch.

The schema version is written when a store is created and checked on every open. Bump
SCHEMA_VERSION whenever this layout or the record encoding changes incompatibly.
"""

from __future__ import annotations

import struct

from meshkp.errors import StoreUsageError
from meshkp.store.protocol import IndexKind

META = b"m"
RECORD = b"r"
INDEX = b"i"
COUNTER = b"c"
EXTRA = b"x"

# Caller keys (RecordWrite.extra) of the control plane's Raft state: hard state, log entries and
# snapshot (meshkp/control/storage.py). Other callers' prefixes ("mk" Merkle, "cf" conflicts)
# never start with it.
CONTROL_PREFIX = b"cp"

SCHEMA_VERSION = 1
SCHEMA_KEY = META + b"schema"

# Fingerprint sizes the store accepts: v3 (MD5, 16 bytes), v4 (SHA-1, 20), v6 (SHA-256, 32),
# RFC 9580 §5.5.4. Checking them catches the classic bug of passing a hex string (40 or 64
# ASCII bytes) where raw bytes belong, which would otherwise store keys nobody can find.
FINGERPRINT_LENGTHS = frozenset({16, 20, 32})

# An index term: an e-mail address, a word of a user ID, a key ID or a fingerprint. Terms come
# from user IDs, which Limits.uid_bytes caps at 2,048 bytes by default; 4,096 leaves room if an
# operator raises that cap and still keeps LevelDB keys (held whole in index blocks) small.
# The u16 length prefix could carry up to 65,535.
MAX_TERM_BYTES = 4096

# A caller key under EXTRA (a Merkle node id, a sync cursor). They are ids, not data.
MAX_EXTRA_KEY_BYTES = 1024

# One stored value (a record, a Merkle node). LevelDB holds a value whole in memory on every
# read and in the write buffer; 64 MiB is far above Limits.key_bytes (4 MiB), so this only
# stops a caller bug from pushing an unbounded value into the store.
MAX_VALUE_BYTES = 64 * 1024 * 1024

# Counter names are short identifiers ("keys", "tombstones").
MAX_COUNTER_NAME_BYTES = 64
COUNTER_MIN = -(2**63)
COUNTER_MAX = 2**63 - 1

_COUNTER = struct.Struct(">q")

# The byte of each index kind, keyed by the IndexKind and by its one-letter value. Both are
# needed as keys: IndexKind.EMAIL == "e", but the two hash differently (Enum hashes its name).
KIND_BYTES: dict[object, bytes] = {
    **{kind: kind.value.encode("ascii") for kind in IndexKind},
    **{kind.value: kind.value.encode("ascii") for kind in IndexKind},
}


# The kind letter of each index kind byte (an entry's first byte).
_KIND_LETTERS: dict[int, str] = {ord(kind.value): kind.value for kind in IndexKind}


def record_key(fingerprint: bytes) -> bytes:
    """The key of a record."""
    return RECORD + fingerprint


def index_prefix(kind: IndexKind, term: bytes) -> bytes:
    """The exact prefix of every index entry of (kind, term); nothing else starts with it."""
    # The write path builds ~10 of these per key: a dict lookup and int.to_bytes are the cheap way.
    return INDEX + KIND_BYTES[kind] + len(term).to_bytes(2, "big") + term


def index_key(kind: IndexKind, term: bytes, fingerprint: bytes) -> bytes:
    """The key of one index entry: (kind, term) points at fingerprint."""
    return index_prefix(kind, term) + fingerprint


def index_entry(kind: IndexKind | str, term: bytes, fingerprint: bytes) -> bytes:
    """One index entry as `Store.iter_index` gives it: its key without the namespace byte."""
    return index_key(kind, term, fingerprint)[len(INDEX):]  # type: ignore[arg-type]


def split_index_entry(entry: bytes) -> tuple[str, bytes, bytes] | None:
    """(kind letter, term, fingerprint) of an encoded index entry; None if it is not one.

    A storable entry has a known kind, a term of 1 to MAX_TERM_BYTES bytes and a 16, 20 or
    32-byte fingerprint after it: exactly what `index_key` builds.
    """
    if len(entry) < 4:
        return None
    kind = _KIND_LETTERS.get(entry[0])
    length = int.from_bytes(entry[1:3], "big")
    fingerprint = entry[3 + length:]
    if kind is None or not 1 <= length <= MAX_TERM_BYTES or len(fingerprint) not in FINGERPRINT_LENGTHS:
        return None
    return kind, entry[3:3 + length], fingerprint


def is_index_entry(entry: bytes) -> bool:
    """Whether `entry` is an encoded index entry `split_index_entry` accepts (without slicing it)."""
    size = len(entry)
    if size < 4 or entry[0] not in _KIND_LETTERS:
        return False
    length = (entry[1] << 8) | entry[2]
    return 1 <= length <= MAX_TERM_BYTES and size - 3 - length in FINGERPRINT_LENGTHS


def counter_key(name: str) -> bytes:
    """The key of a named counter."""
    return COUNTER + name.encode("utf-8")


def encode_counter(value: int) -> bytes:
    """A counter value as stored: signed 64-bit big-endian."""
    return _COUNTER.pack(value)


def decode_counter(raw: bytes) -> int:
    """The value of a stored counter."""
    return int(_COUNTER.unpack(raw)[0])


def extra_key(key: bytes) -> bytes:
    """The store key of a caller key written through RecordWrite.extra."""
    return EXTRA + key


def encode_schema_version(version: int) -> bytes:
    """The schema version as stored: ASCII decimal, readable with any LevelDB tool."""
    return str(version).encode("ascii")


def decode_schema_version(raw: bytes) -> int | None:
    """The stored schema version, or None if the value is not a version at all."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return int(text) if text.isdigit() else None


def require_bytes(what: str, value: object) -> bytes:
    """value itself if it is bytes; StoreUsageError naming `what` otherwise."""
    if not isinstance(value, bytes):
        raise StoreUsageError(f"{what} must be bytes, got {type(value).__name__}")
    return value


def require_limit(limit: object) -> int:
    """limit itself if it is an int >= 0; StoreUsageError otherwise."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise StoreUsageError(f"limit must be an int >= 0, got {limit!r}")
    return limit


def require_kind(kind: object) -> IndexKind:
    """kind as an IndexKind (its one-letter value is accepted too); StoreUsageError otherwise."""
    try:
        return IndexKind(kind)
    except ValueError:
        raise StoreUsageError(
            f"unknown index kind {kind!r}; known: {[k.value for k in IndexKind]}"
        ) from None


def is_storable_term(term: bytes) -> bool:
    """Whether a term could have been written; others match nothing."""
    return 1 <= len(term) <= MAX_TERM_BYTES
