"""Wire form of the compact diff (crdt.recon): versions 2 and 3, one body format.

crdt.merkle_diff is version 1 (a msgpack map). A responder of one version refuses a query of a
newer one ("malformed diff query" from v1, which is where a v2 node sends anything that does
not start like a v2 query), which is how an initiator learns to step down (meshkp/replication).

v2, msgpack arrays of bins and ints:
    query  [2, geometry, my full root or nil (first query only), node items, wanted paths]
    answer [2, same root, node items answered, wants answered, body]
v3, raw bytes after a 0xc1 0x03 prefix (0xc1 is the one byte msgpack never uses, so no v1 or
v2 decoder takes a v3 message for one of its own):
    query  c1 03, flags byte (1: a root follows, 2: a check is asked for, 4: the default
           geometry), geometry (6 bytes, unless the default), salt (8), [salted 8-byte root],
           varint length of the node items, node items, wanted paths (the rest; with a
           check: a varint length, the wanted paths, then the paths the check cuts out)
    answer c1 03, flags byte (1: same root, 2: a check hash follows), [8-byte check hash],
           varint node items answered, varint wants answered, body
At d = 10 a diff is ~10 messages, so each byte of framing is ~1 byte per difference: v3's
framing is ~10 bytes a round trip less than v2's.

The body of messages (paths, node items, listings, offers) is crdt.recon_body.
"""

from __future__ import annotations

from dataclasses import dataclass

from crdt.encoding import as_bytes, as_int, as_list, packb, unpackb
from crdt.errors import DecodeError, DiffProtocolError
from crdt.merkle import HASH_BYTES
from crdt.recon_body import MAX_INLINE_IDS, MIN_HASH_BYTES, Reader, encode_varint

V2, V3 = 2, 3
RECON_VERSION = V3  # the newest this code speaks
V3_PREFIX = b"\xc1\x03"
MIN_SALT_BYTES = 8
MAX_SALT_BYTES = 16  # BLAKE2b keys are at most 64 bytes; 16 is unguessable
V3_SALT_BYTES = 8
V3_ROOT_BYTES = 8  # a salted root or check hash: equal by chance once in 2**64
# v3 query flags: a root follows, a closing check is asked for, the geometry is the default
# (and left out: 6 bytes of each query, ~0.5 B per difference at d = 10).
_HAS_ROOT, _HAS_CHECK, _DEFAULT_GEOMETRY = 0x01, 0x02, 0x04
DEFAULT_GEOMETRY = bytes([4, 4, 4, 2, 4, 2])  # fanout 16, depth 4, hashes 4/2, digests 4, 2


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
    version: int = RECON_VERSION


@dataclass(frozen=True, slots=True)
class ReconQuery:
    geometry: ReconGeometry
    root: bytes | None  # first query only: my root (v2: whole; v3: salted, 16 bytes)
    nodes: bytes  # packed node items
    wants: bytes  # packed paths
    # v3, the closing check (crdt.recon_check) asked for: the packed paths it cuts out
    # besides those this answer resolves (None: no check asked for).
    cut: bytes | None = None


@dataclass(frozen=True, slots=True)
class ReconAnswer:
    same_root: bool
    answered: int  # node items of the query answered (a prefix; the rest is deferred)
    answered_wants: int
    body: bytes
    version: int = RECON_VERSION
    check: bytes | None = None  # v3: the closing check's hash over the responder's tree


def _geometry_bytes(g: ReconGeometry) -> bytes:
    return bytes([g.fanout.bit_length() - 1, g.depth, g.hash_bytes, g.short_hash_bytes,
                  g.digest_bytes, g.inline_ids])


def encode_query(query: ReconQuery) -> bytes:
    g = query.geometry
    if g.version == V2:
        return packb([V2, _geometry_bytes(g) + g.salt, query.root, query.nodes, query.wants])
    geometry = _geometry_bytes(g)
    flags = ((_HAS_ROOT if query.root is not None else 0)
             | (_HAS_CHECK if query.cut is not None else 0)
             | (_DEFAULT_GEOMETRY if geometry == DEFAULT_GEOMETRY else 0))
    tail = (query.wants,) if query.cut is None else (encode_varint(len(query.wants)),
                                                      query.wants, query.cut)
    return b"".join((V3_PREFIX, bytes([flags]),
                     b"" if flags & _DEFAULT_GEOMETRY else geometry, g.salt,
                     query.root or b"", encode_varint(len(query.nodes)), query.nodes, *tail))


def encode_answer(answer: ReconAnswer) -> bytes:
    if answer.version == V2:
        return packb([V2, answer.same_root, answer.answered, answer.answered_wants,
                      answer.body])
    flags = answer.same_root | (2 if answer.check is not None else 0)
    return b"".join((V3_PREFIX, bytes([flags]), answer.check or b"",
                     encode_varint(answer.answered), encode_varint(answer.answered_wants),
                     answer.body))


def _check_size(data: bytes, what: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise DiffProtocolError(f"{what} of {len(data)} bytes exceeds the {max_bytes}-byte limit")


def _checked_v2(data: bytes, what: str) -> list[object]:
    msg = unpackb(data, what)
    if isinstance(msg, dict) and msg.get("v") == 1:
        raise DiffProtocolError(f"{what}: protocol version 1, expected 2")
    items = as_list(msg, what, 5)
    if items[0] != V2:
        raise DiffProtocolError(f"{what}: protocol version {items[0]!r}, expected 2")
    return items


def _geometry(raw: bytes, salt: bytes, version: int) -> ReconGeometry:
    fanout_bits, depth, hash_bytes, short_bytes, digest_bytes, inline = raw[:6]
    return ReconGeometry(
        1 << as_int(fanout_bits, "log2(fanout)", 1, 8), as_int(depth, "depth", 1, 16),
        as_int(hash_bytes, "hash_bytes", MIN_HASH_BYTES, HASH_BYTES),
        as_int(short_bytes, "short_hash_bytes", MIN_HASH_BYTES, HASH_BYTES),
        as_int(digest_bytes, "digest_bytes", MIN_HASH_BYTES, HASH_BYTES),
        as_int(inline, "inline_ids", 0, MAX_INLINE_IDS), salt, version,
    )


def decode_query(data: bytes, max_bytes: int) -> ReconQuery:
    """Shape-checked query of either version; DiffProtocolError on anything else."""
    _check_size(data, "recon query", max_bytes)
    try:
        if recon_version(data) == V3:
            reader = Reader(data, "recon query")
            reader.take(len(V3_PREFIX))
            flags = reader.u8()
            if flags & ~0x07 or flags & (_HAS_ROOT | _HAS_CHECK) == _HAS_ROOT | _HAS_CHECK:
                raise DecodeError(f"query flags {flags:#x}")
            raw = DEFAULT_GEOMETRY if flags & _DEFAULT_GEOMETRY else reader.take(6)
            geometry = _geometry(raw, reader.take(V3_SALT_BYTES), V3)
            root = reader.take(V3_ROOT_BYTES) if flags & _HAS_ROOT else None
            nodes = reader.take(reader.varint())
            if not flags & _HAS_CHECK:
                return ReconQuery(geometry, root, nodes, reader.rest())
            wants = reader.take(reader.varint())
            return ReconQuery(geometry, root, nodes, wants, reader.rest())
        _, raw_geometry, root_obj, nodes_obj, wants_obj = _checked_v2(data, "recon query")
        raw = as_bytes(raw_geometry, "geometry", 6 + MIN_SALT_BYTES, 6 + MAX_SALT_BYTES)
        root = None if root_obj is None else as_bytes(root_obj, "root", HASH_BYTES, HASH_BYTES)
        return ReconQuery(_geometry(raw, raw[6:], V2), root, as_bytes(nodes_obj, "nodes", 0, max_bytes),
                          as_bytes(wants_obj, "wants", 0, max_bytes))
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed recon query: {exc}") from exc


def decode_answer(data: bytes, max_bytes: int, version: int) -> ReconAnswer:
    """Shape-checked answer (its body is read by the initiator, which knows the context)."""
    _check_size(data, "recon answer", max_bytes)
    try:
        if version == V3:
            if recon_version(data) != V3:
                raise DecodeError("not a version 3 answer")
            reader = Reader(data, "recon answer")
            reader.take(len(V3_PREFIX))
            flags = reader.u8()
            if flags > 3:
                raise DecodeError(f"answer flags {flags:#x}")
            check = reader.take(V3_ROOT_BYTES) if flags & 2 else None
            return ReconAnswer(bool(flags & 1), reader.varint(), reader.varint(), reader.rest(),
                               V3, check)
        _, same_obj, answered, answered_wants, body = _checked_v2(data, "recon answer")
        if not isinstance(same_obj, bool):
            raise DecodeError("same_root flag is not a bool")
        return ReconAnswer(same_obj, as_int(answered, "answered"),
                           as_int(answered_wants, "answered wants"),
                           as_bytes(body, "body", 0, max_bytes), V2)
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed recon answer: {exc}") from exc


def recon_version(data: bytes) -> int | None:
    """The compact diff version of a query (2: a msgpack 5-array, 3: the c1 03 prefix), or
    None (v1 sends a msgpack map)."""
    if data[:2] == b"\x95\x02":
        return V2
    if data[:2] == V3_PREFIX:
        return V3
    return None


def is_recon_query(data: bytes) -> bool:
    """Whether a diff query is a compact (v2 or v3) one."""
    return recon_version(data) is not None
