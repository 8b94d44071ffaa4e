"""Wire form of the compact diff (crdt.recon): msgpack maps with packed blobs inside.

Version 2 of the diff protocol (crdt.merkle_diff is version 1): a v1 responder refuses a v2
query by its "v" field, which is how an initiator learns to fall back (meshkp/replication).

    query  [2, geometry, my full root or nil (first query only), node items, wanted paths]
    answer [2, same root, node items answered, wants answered, body]

(msgpack arrays of bins and ints: at d = 10 a round is ~16 messages, so each byte of
framing is ~1.6 bytes per difference). The geometry is one bin: log2(fanout), depth,
hash_bytes, short_hash_bytes, digest_bytes, inline_ids, then the session's salt.
A path is a length byte then its base-4 digits packed four to a byte; in a node item the
length byte's top bits say its hashes (and those of the NODE answers to it) are whole, 32
bytes (FULL_HASHES: a retry after a collision), or short (SHORT_HASHES: where differences are
sparse, crdt.recon). A node item is a path,
a byte whose bit 3-c says child c is non-empty, and the wire hashes of the non-empty
children. The answer body holds, per answered node item, one byte of four 2-bit child states
(SAME, NODE, LIST, EMPTY; child 0 in the top bits) and then, per child in order, its payload:
a NODE is a mask byte and hashes as above, a LIST a listing. Per answered want: a state byte,
then the same payloads. A listing is a u16 count, then per entry the id's length byte, the
id, and its salted short digest. Paths are left out of answers: the initiator knows which
items it asked about, and in which order.
"""

from __future__ import annotations

from dataclasses import dataclass

from crdt.encoding import as_bytes, as_int, as_list, packb, unpackb
from crdt.errors import DecodeError, DiffProtocolError
from crdt.merkle import HASH_BYTES, MAX_ID_BYTES
from crdt.recon_view import ARITY, VPath

RECON_VERSION = 2
SAME, NODE, LIST, EMPTY = 0, 1, 2, 3
# 2 bytes collide once in 65,536 differing subtrees: each collision only delays that
# difference to a later round (the salt changes), but below this rounds start to repeat.
MIN_HASH_BYTES = 2
MIN_SALT_BYTES = 8
MAX_SALT_BYTES = 16  # BLAKE2b keys are at most 64 bytes; 16 is unguessable
MAX_INLINE_IDS = 64
# Entries of one listing: a u16 count.
MAX_LISTING = 65_535
# Top bits of a node item's path length byte: this item's hashes are whole (32 bytes), or
# short (short_hash_bytes); neither: hash_bytes.
FULL_HASHES = 0x80
SHORT_HASHES = 0x40
_FLAGS = FULL_HASHES | SHORT_HASHES


@dataclass(frozen=True, slots=True)
class ReconGeometry:
    """What both sides must agree on for one session."""

    fanout: int
    depth: int
    hash_bytes: int
    short_hash_bytes: int
    digest_bytes: int
    inline_ids: int
    salt: bytes


@dataclass(frozen=True, slots=True)
class ReconQuery:
    geometry: ReconGeometry
    root: bytes | None  # first query only: my full 32-byte root
    nodes: bytes  # packed node items
    wants: bytes  # packed paths


@dataclass(frozen=True, slots=True)
class ReconAnswer:
    same_root: bool
    answered: int  # node items of the query answered (a prefix; the rest is deferred)
    answered_wants: int
    body: bytes


def encode_path(vpath: VPath, flags: int = 0) -> bytes:
    """Length byte (with `flags`), then the digits packed four to a byte (first digit in the
    top bits)."""
    out = bytearray([len(vpath) | flags])
    for at in range(0, len(vpath), 4):
        chunk = vpath[at:at + 4]
        value = 0
        for digit in chunk:
            value = (value << 2) | digit
        out.append(value << (2 * (4 - len(chunk))))
    return bytes(out)


class Reader:
    """Reads a packed blob; every shortfall or bad value is a DiffProtocolError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.at = 0
        self.what = what

    def take(self, count: int) -> bytes:
        end = self.at + count
        if end > len(self.data):
            raise DiffProtocolError(f"{self.what}: truncated at byte {self.at}")
        chunk = self.data[self.at:end]
        self.at = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def path(self, max_len: int) -> VPath:
        return self.flagged_path(max_len, allow_flags=False)[0]

    def flagged_path(self, max_len: int, allow_flags: bool = True) -> tuple[VPath, int]:
        """A path, and the flags of its length byte (FULL_HASHES, SHORT_HASHES)."""
        length = self.u8()
        flags = length & _FLAGS if allow_flags else 0
        if flags == _FLAGS:
            raise DiffProtocolError(f"{self.what}: a path flagged both full and short")
        length &= ~flags
        if length > max_len:
            raise DiffProtocolError(f"{self.what}: path of {length} digits, at most {max_len}")
        packed = self.take((length + 3) // 4)
        digits = [(byte >> (6 - 2 * j)) & 3 for byte in packed for j in range(4)]
        if any(digits[length:]):
            raise DiffProtocolError(f"{self.what}: path padding is not zero")
        return tuple(digits[:length]), flags

    def hashes(self, hash_bytes: int) -> tuple[bytes | None, ...]:
        """A mask byte and the hashes of the non-empty children (None: empty)."""
        mask = self.u8()
        if mask > 0xF:
            raise DiffProtocolError(f"{self.what}: child mask {mask:#x} has more than 4 bits")
        return tuple(
            self.take(hash_bytes) if mask & (1 << (ARITY - 1 - c)) else None for c in range(ARITY)
        )

    def listing(self, digest_bytes: int) -> list[tuple[bytes, bytes]]:
        count = self.u16()
        entries = []
        for _ in range(count):
            length = self.u8()
            if not 1 <= length <= MAX_ID_BYTES:
                raise DiffProtocolError(f"{self.what}: an id of {length} bytes")
            entries.append((self.take(length), self.take(digest_bytes)))
        return entries

    def end(self) -> None:
        if self.at != len(self.data):
            raise DiffProtocolError(f"{self.what}: {len(self.data) - self.at} bytes left over")


def pack_hashes(hashes: tuple[bytes | None, ...]) -> bytes:
    """A mask byte and the non-empty hashes (None: an empty child)."""
    mask = 0
    for c, value in enumerate(hashes):
        if value is not None:
            mask |= 1 << (ARITY - 1 - c)
    return bytes([mask]) + b"".join(h for h in hashes if h is not None)


def pack_listing(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A u16 count, then (id length, id, short digest) per entry."""
    if len(entries) > MAX_LISTING:
        raise DiffProtocolError(f"a listing of {len(entries)} entries, at most {MAX_LISTING}")
    parts = [len(entries).to_bytes(2, "big")]
    for item_id, short in entries:
        parts.append(bytes([len(item_id)]))
        parts.append(item_id)
        parts.append(short)
    return b"".join(parts)


def encode_query(query: ReconQuery) -> bytes:
    g = query.geometry
    geometry = bytes([g.fanout.bit_length() - 1, g.depth, g.hash_bytes, g.short_hash_bytes,
                      g.digest_bytes, g.inline_ids]) + g.salt
    return packb([RECON_VERSION, geometry, query.root, query.nodes, query.wants])


def encode_answer(answer: ReconAnswer) -> bytes:
    return packb([RECON_VERSION, answer.same_root, answer.answered, answer.answered_wants,
                  answer.body])


def _checked(data: bytes, what: str, max_bytes: int) -> list[object]:
    if len(data) > max_bytes:
        raise DiffProtocolError(f"{what} of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    msg = unpackb(data, what)
    if isinstance(msg, dict) and msg.get("v") == 1:
        raise DiffProtocolError(f"{what}: protocol version 1, expected 2")
    items = as_list(msg, what, 5)
    if items[0] != RECON_VERSION:
        raise DiffProtocolError(f"{what}: protocol version {items[0]!r}, expected 2")
    return items


def _root(obj: object) -> bytes | None:
    return None if obj is None else as_bytes(obj, "root", HASH_BYTES, HASH_BYTES)


def decode_query(data: bytes, max_bytes: int) -> ReconQuery:
    """Shape-checked query; DiffProtocolError on anything else."""
    try:
        _, raw_geometry, root, nodes, wants = _checked(data, "recon query", max_bytes)
        raw = as_bytes(raw_geometry, "geometry", 6 + MIN_SALT_BYTES, 6 + MAX_SALT_BYTES)
        fanout_bits, depth, hash_bytes, short_bytes, digest_bytes, inline = raw[:6]
        geometry = ReconGeometry(
            1 << as_int(fanout_bits, "log2(fanout)", 1, 8), as_int(depth, "depth", 1, 16),
            as_int(hash_bytes, "hash_bytes", MIN_HASH_BYTES, HASH_BYTES),
            as_int(short_bytes, "short_hash_bytes", MIN_HASH_BYTES, HASH_BYTES),
            as_int(digest_bytes, "digest_bytes", MIN_HASH_BYTES, HASH_BYTES),
            as_int(inline, "inline_ids", 0, MAX_INLINE_IDS), raw[6:],
        )
        return ReconQuery(geometry, _root(root), as_bytes(nodes, "nodes", 0, max_bytes),
                          as_bytes(wants, "wants", 0, max_bytes))
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed recon query: {exc}") from exc


def decode_answer(data: bytes, max_bytes: int) -> ReconAnswer:
    """Shape-checked answer (its body is read by the initiator, which knows the context)."""
    try:
        _, same, answered, answered_wants, body = _checked(data, "recon answer", max_bytes)
        if not isinstance(same, bool):
            raise DecodeError("same_root flag is not a bool")
        return ReconAnswer(same, as_int(answered, "answered"),
                           as_int(answered_wants, "answered wants"),
                           as_bytes(body, "body", 0, max_bytes))
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed recon answer: {exc}") from exc


def is_recon_query(data: bytes) -> bool:
    """Whether a diff query is a compact (v2) one: a 5-array, where v1 sends a map."""
    return data[:2] == b"\x95\x02"
