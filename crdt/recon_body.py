"""The body of compact-diff messages (crdt.recon_wire is their envelope): paths, node items,
answers, listings, offers, and the Reader that checks every byte of them.

The geometry is log2(fanout), depth, hash_bytes, short_hash_bytes, digest_bytes, inline_ids,
then (v2: the rest of the bin) the session's salt. A path is a length byte then its base-4
digits packed four to a byte. In a node item the length byte's top bits say its hashes (and
those of the NODE answers to it) are whole, 32 bytes (FULL_HASHES: a retry after a
collision), or short (SHORT_HASHES: where differences are sparse, crdt.recon), or (v3, both
bits, TINY_HASHES) one byte, on chains of single differences. A node item
is a path, a mask byte, and the wire hashes of the non-empty children: bit 3-c of the mask
says child c is non-empty; in v3 bit 7-c says the initiator holds at most inline_ids there
(SMALL: the responder then lists it in short form). The answer body holds, per answered node
item, one byte of four 2-bit child states (SAME, NODE, LIST, EMPTY; child 0 in the top bits)
and then, per child in order, its payload: a NODE is a mask byte and hashes as above, a LIST
a listing. Per answered want: a state byte, then the same payloads. Paths are left out of
answers: the initiator knows which items it asked about, and in which order.

A listing is a u16 count (v3: 1 byte below 64, else 2 with 0x40 set), then per entry the
id's length byte, the id, and its salted short digest (none where the initiator holds
nothing: every id listed there is new to it). A short listing (v3; its count byte has the top
bit set) is, per entry, a 3-byte salted hash of the id and a 2-byte salted digest: the
initiator matches them against the few ids it holds there and asks by index (INDEXED want)
for only the ids it lacks. Paths in v3 come in groups (pack_grouped) of one length byte.
"""

from __future__ import annotations

from crdt.errors import DiffProtocolError
from crdt.merkle import MAX_ID_BYTES
from crdt.recon_view import ARITY, VPath

SAME, NODE, LIST, EMPTY = 0, 1, 2, 3
# 2 bytes collide once in 65,536 differing subtrees: each collision only delays that
# difference to a later round (the salt changes), but below this rounds start to repeat.
MIN_HASH_BYTES = 2
MAX_INLINE_IDS = 64
# Entries of one listing: a u16 count (v3: one byte below 64, else two bytes of 14 bits with
# 0x40 set; a count byte with 0x80 set starts a short listing).
MAX_LISTING = 65_535
MAX_V3_LISTING = 0x3FFF
# Entries of a short listing (7 bits), and what a responder lists short at most: above it
# a full listing is as cheap (all but inline_ids of the ids are new to the initiator).
MAX_SHORT_LISTING = 0x7F
SHORT_LIST_AT_MOST = 16
SHORT_ID_BYTES = 3
SHORT_DIGEST_BYTES = 3
# Top bits of a node item's path length byte: this item's hashes are whole (32 bytes), or
# short (short_hash_bytes); neither: hash_bytes.
FULL_HASHES = 0x80
SHORT_HASHES = 0x40
_FLAGS = FULL_HASHES | SHORT_HASHES
# v3: both bits, one-byte hashes (a chain of single differences far below the last level
# with more than one difference per node: the closing check catches what they hide).
TINY_HASHES = _FLAGS
TINY_HASH_BYTES = 1
# v3, bit 5 of a node item's length byte (paths are at most 22 digits): no mask byte
# follows, since no child is small and every child is non-empty or the hashes are one byte
# (0 then stands for an empty child); ~1 B an item. NODE payloads of one-byte hashes never
# have a mask in v3.
ALL_CHILDREN = 0x20
# Top bits of a v3 want's path length byte: what listing is wanted. Plain: a full listing;
# SHORT_WANT (an offer): a count byte and the 3-byte salted hashes of the initiator's ids
# there follow the path, and the answer says which of them the responder holds, with their
# 2-byte digest hashes, then lists its other ids in full (an offer reply); INDEXED: the ids
# at these positions of a short listing (a count byte and ascending index bytes follow the
# path); IDS_ONLY: a full listing without digests (the initiator holds nothing there).
PLAIN_WANT, SHORT_WANT, INDEXED, IDS_ONLY = 0x00, 0x40, 0x80, 0xC0
_VARINT_MAX_BYTES = 4


def encode_path(vpath: VPath, flags: int = 0) -> bytes:
    """Length byte (with `flags`), then the digits packed four to a byte (first digit in the
    top bits)."""
    return bytes([len(vpath) | flags]) + path_digits(vpath)


def path_digits(vpath: VPath) -> bytes:
    """The digits of a path packed four to a byte (first digit in the top bits)."""
    out = bytearray()
    for at in range(0, len(vpath), 4):
        chunk = vpath[at:at + 4]
        value = 0
        for digit in chunk:
            value = (value << 2) | digit
        out.append(value << (2 * (4 - len(chunk))))
    return bytes(out)


def encode_varint(value: int) -> bytes:
    """LEB128, at most 4 bytes (values below 2**28)."""
    if not 0 <= value < 1 << (7 * _VARINT_MAX_BYTES):
        raise DiffProtocolError(f"varint {value} out of range")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pack_grouped(items: list[tuple[int, VPath, bytes]]) -> bytes:
    """v3 items, each (flags, path, what follows its path), in groups of one length byte and
    a count: a query's items are mostly of one or two levels, so this saves the length byte
    of each (~1 B per difference per round trip). Items are grouped as they come."""
    out: list[bytes] = []
    at = 0
    while at < len(items):
        header = len(items[at][1]) | items[at][0]
        end = at
        while end < len(items) and len(items[end][1]) | items[end][0] == header:
            end += 1
        out.append(bytes([header]) + encode_varint(end - at))
        out.extend(path_digits(vpath) + rest for _, vpath, rest in items[at:end])
        at = end
    return b"".join(out)


def group_key(flags: int, vpath: VPath) -> int:
    """The order items are sent in, so that pack_grouped makes as few groups as it can."""
    return len(vpath) | flags


class Reader:
    """Reads a packed blob; every shortfall or bad value is a DiffProtocolError.

    `grouped` (v3): paths come in groups of one length byte and a varint count (pack_grouped).
    """

    def __init__(self, data: bytes, what: str, grouped: bool = False) -> None:
        self.data = data
        self.at = 0
        self.what = what
        self.grouped = grouped
        self._left = 0  # paths left in the current group
        self._header = 0

    def more(self) -> bool:
        """Whether another item follows."""
        return self.at < len(self.data) or self._left > 0

    def take(self, count: int) -> bytes:
        end = self.at + count
        if end > len(self.data):
            raise DiffProtocolError(f"{self.what}: truncated at byte {self.at}")
        chunk = self.data[self.at:end]
        self.at = end
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.at)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def peek(self) -> int:
        if self.at >= len(self.data):
            raise DiffProtocolError(f"{self.what}: truncated at byte {self.at}")
        return self.data[self.at]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 7 * _VARINT_MAX_BYTES, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise DiffProtocolError(f"{self.what}: varint longer than {_VARINT_MAX_BYTES} bytes")

    def path(self, max_len: int) -> VPath:
        return self.flagged_path(max_len, allow_flags=False)[0]

    def flagged_path(self, max_len: int, allow_flags: bool = True,
                     allow_both: bool = False, extra: int = 0) -> tuple[VPath, int]:
        """A path, and the flags of its length byte (its top two bits, and `extra`)."""
        if self.grouped:
            if not self._left:
                self._header = self.u8()
                self._left = self.varint()
                if not self._left:
                    raise DiffProtocolError(f"{self.what}: an empty group of paths")
            self._left -= 1
            length = self._header
        else:
            length = self.u8()
        flags = length & _FLAGS if allow_flags else 0
        if flags == _FLAGS and not allow_both:
            raise DiffProtocolError(f"{self.what}: a path flagged both full and short")
        flags |= length & extra
        length &= ~flags
        if length > max_len:
            raise DiffProtocolError(f"{self.what}: path of {length} digits, at most {max_len}")
        packed = self.take((length + 3) // 4)
        digits = [(byte >> (6 - 2 * j)) & 3 for byte in packed for j in range(4)]
        if any(digits[length:]):
            raise DiffProtocolError(f"{self.what}: path padding is not zero")
        return tuple(digits[:length]), flags

    def hashes(self, hash_bytes: int, allow_small: bool = False, all_children: bool = False
               ) -> tuple[tuple[bytes | None, ...], int]:
        """A mask byte and the hashes of the non-empty children (None: empty), and the
        children the sender marked small (a 4-bit mask, v3); `all_children`: no mask, four
        hashes, none small (ALL_CHILDREN)."""
        if all_children:
            return self.unmasked(hash_bytes), 0
        mask = self.u8()
        small = mask >> ARITY
        if small and not allow_small:
            raise DiffProtocolError(f"{self.what}: child mask {mask:#x} has more than 4 bits")
        if small & ~mask & 0xF:
            raise DiffProtocolError(f"{self.what}: child mask {mask:#x} marks an empty child small")
        hashes = tuple(
            self.take(hash_bytes) if mask & (1 << (ARITY - 1 - c)) else None for c in range(ARITY)
        )
        return hashes, small

    def unmasked(self, hash_bytes: int) -> tuple[bytes | None, ...]:
        """Four hashes without a mask (pack_unmasked): one-byte ones are 0 for an empty
        child (a one-byte wire hash is never 0), longer ones are all there."""
        hashes = tuple(self.take(hash_bytes) for _ in range(ARITY))
        if hash_bytes == TINY_HASH_BYTES:
            return tuple(h if h != b"\x00" else None for h in hashes)
        return hashes

    def payload_hashes(self, hash_bytes: int, version: int) -> tuple[bytes | None, ...]:
        """A NODE payload's child hashes: without a mask in v3 when they are one byte."""
        if version >= 3 and hash_bytes == TINY_HASH_BYTES:
            return self.unmasked(hash_bytes)
        return self.hashes(hash_bytes)[0]

    def listing(self, digest_bytes: int, max_count: int = MAX_LISTING
                ) -> list[tuple[bytes, bytes]]:
        if max_count == MAX_V3_LISTING:
            first = self.u8()
            if first & 0x80:
                raise DiffProtocolError(f"{self.what}: a short listing where a full one belongs")
            count = first if first < 0x40 else ((first & 0x3F) << 8) | self.u8()
        else:
            count = self.u16()
        if count > max_count:
            raise DiffProtocolError(f"{self.what}: a listing of {count} entries")
        entries = []
        for _ in range(count):
            length = self.u8()
            if not 1 <= length <= MAX_ID_BYTES:
                raise DiffProtocolError(f"{self.what}: an id of {length} bytes")
            entries.append((self.take(length), self.take(digest_bytes)))
        return entries

    def short_listing(self) -> list[tuple[bytes, bytes]]:
        """A short listing's (id hash, digest hash) entries."""
        count = self.u8() & MAX_SHORT_LISTING
        return [(self.take(SHORT_ID_BYTES), self.take(SHORT_DIGEST_BYTES)) for _ in range(count)]

    def want(self, max_len: int) -> tuple[VPath, int, list[int], list[bytes]]:
        """A v3 want: its path, kind, indices (INDEXED) and offered id hashes (SHORT_WANT)."""
        vpath, kind = self.flagged_path(max_len, allow_both=True)
        indices = self.indices() if kind == INDEXED else []
        offered = self.offer() if kind == SHORT_WANT else []
        return vpath, kind, indices, offered

    def offer(self) -> list[bytes]:
        """An offer's short id hashes."""
        count = self.u8()
        if count > MAX_SHORT_LISTING:
            raise DiffProtocolError(f"{self.what}: an offer of {count} ids")
        return [self.take(SHORT_ID_BYTES) for _ in range(count)]

    def offer_reply(self, offered: int) -> tuple[list[bytes | None], list[bytes]]:
        """Per offered id, its digest hash if the responder holds it; the responder's other
        ids."""
        count = self.u8() & MAX_SHORT_LISTING
        if count != offered:
            raise DiffProtocolError(f"{self.what}: a reply to {count} offered ids, not {offered}")
        width = _mask_bytes(count)
        mask = int.from_bytes(self.take(width), "big")
        held: list[bytes | None] = [
            self.take(SHORT_DIGEST_BYTES) if mask >> (8 * width - 1 - index) & 1 else None
            for index in range(count)]
        if mask & ((1 << (8 * width - count)) - 1):
            raise DiffProtocolError(f"{self.what}: offer reply mask padding is not zero")
        return held, [i for i, _ in self.listing(0, MAX_V3_LISTING)]

    def indices(self) -> list[int]:
        """An INDEXED want's count byte and strictly ascending index bytes."""
        count = self.u8()
        found = list(self.take(count))
        if not found or any(b <= a for a, b in zip(found, found[1:], strict=False)):
            raise DiffProtocolError(f"{self.what}: indices {found} are not ascending")
        return found

    def end(self) -> None:
        if self.at != len(self.data) or self._left:
            raise DiffProtocolError(f"{self.what}: {len(self.data) - self.at} bytes left over")


def pack_hashes(hashes: tuple[bytes | None, ...], small: int = 0) -> bytes:
    """A mask byte (empty children, and `small` in the top 4 bits) and the non-empty hashes."""
    mask = small << ARITY
    for c, value in enumerate(hashes):
        if value is not None:
            mask |= 1 << (ARITY - 1 - c)
    return bytes([mask]) + b"".join(h for h in hashes if h is not None)


def unmasked_fits(hashes: tuple[bytes | None, ...]) -> bool:
    """Whether four hashes can go without a mask: one-byte ones, or all children there."""
    return all(h is not None for h in hashes) or all(h is None or len(h) == TINY_HASH_BYTES
                                                    for h in hashes)


def pack_unmasked(hashes: tuple[bytes | None, ...]) -> bytes:
    """Four hashes without a mask, 0 for an empty child (one-byte hashes only)."""
    return b"".join(h if h is not None else b"\x00" for h in hashes)


def pack_payload_hashes(hashes: tuple[bytes | None, ...], size: int, version: int) -> bytes:
    """A NODE payload's child hashes (Reader.payload_hashes)."""
    if version >= 3 and size == TINY_HASH_BYTES:
        return pack_unmasked(hashes)
    return pack_hashes(hashes)


def pack_listing(entries: list[tuple[bytes, bytes]], max_count: int = MAX_LISTING) -> bytes:
    """A u16 count, then (id length, id, short digest) per entry."""
    count = len(entries)
    if count > max_count:
        raise DiffProtocolError(f"a listing of {count} entries, at most {max_count}")
    if max_count != MAX_V3_LISTING:
        parts = [count.to_bytes(2, "big")]
    else:
        parts = [bytes([count]) if count < 0x40 else (0x4000 | count).to_bytes(2, "big")]
    for item_id, short in entries:
        parts.append(bytes([len(item_id)]))
        parts.append(item_id)
        parts.append(short)
    return b"".join(parts)


def pack_short_listing(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A count byte (top bit set), then (id hash, digest hash) per entry."""
    if len(entries) > MAX_SHORT_LISTING:
        raise DiffProtocolError(f"a short listing of {len(entries)} entries")
    return bytes([0x80 | len(entries)]) + b"".join(i + d for i, d in entries)


def is_short_listing(reader: Reader) -> bool:
    """Whether the listing the reader is at is a short one (v3)."""
    return bool(reader.peek() & 0x80)


def pack_offer(short_ids: list[bytes]) -> bytes:
    """An offer's count byte and short id hashes."""
    if len(short_ids) > MAX_SHORT_LISTING:
        raise DiffProtocolError(f"an offer of {len(short_ids)} ids")
    return bytes([len(short_ids)]) + b"".join(short_ids)


def pack_offer_reply(held: list[bytes | None], others: list[bytes]) -> bytes:
    """0x80 | offered count, a bit per offered id held (first id in the top bit), the 2-byte
    digest hash of each held one, then an ids-only listing of the responder's other ids."""
    mask = 0
    for index, digest_hash in enumerate(held):
        if digest_hash is not None:
            mask |= 1 << (8 * _mask_bytes(len(held)) - 1 - index)
    return b"".join((bytes([0x80 | len(held)]),
                     mask.to_bytes(_mask_bytes(len(held)), "big"),
                     *(h for h in held if h is not None),
                     pack_listing([(i, b"") for i in others], MAX_V3_LISTING)))


def _mask_bytes(count: int) -> int:
    return (count + 7) // 8


def pack_indices(indices: list[int]) -> bytes:
    return bytes([len(indices), *indices])
