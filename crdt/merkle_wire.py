"""Messages of the Merkle diff protocol (crdt.merkle_diff) and their msgpack encoding.

A path travels as bytes, one byte per level (fanout <= 256). A node's children travel as a
list of their sizes plus one blob of the truncated hashes of the non-empty ones (an empty
subtree's hash is known: all zero), which matters in sparse trees. Entries travel as a flat list
[id, digest, id, digest, ...]. `decode_*` check shape and bounds and raise DiffProtocolError;
checks that need the session (was this path asked for?) are the state machines' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crdt.encoding import as_bytes, as_dict, as_int, as_list, packb, unpackb
from crdt.errors import DecodeError, DiffProtocolError
from crdt.merkle import MAX_DIGEST_BYTES, MAX_ID_BYTES, Path

PROTOCOL_VERSION = 1
# Hash prefixes shorter than 4 bytes collide by chance every few thousand subtrees; 32 is all.
MIN_HASH_BYTES = 4
MAX_HASH_BYTES = 32
_MAX_SIZE = 2**32 - 1
# A responder lists a subtree whole when it holds at most this many ids; far above any useful
# value, it only stops a query from making the responder list huge subtrees at once.
MAX_INLINE_IDS = 1024


@dataclass(frozen=True, slots=True)
class Geometry:
    """What both sides must agree on: tree shape and wire hash length."""

    fanout: int
    depth: int
    hash_bytes: int
    inline_ids: int


WireSlot = tuple[bytes, int]  # (hash truncated to hash_bytes, ids in the subtree)


@dataclass(frozen=True, slots=True)
class NodeItem:
    """The sender's child slots of the inner node at `path`, one per child."""

    path: Path
    slots: tuple[WireSlot, ...]

    @property
    def sent_hashes(self) -> int:
        """Hashes this item puts on the wire (empty children cost none)."""
        return sum(1 for _, size in self.slots if size)


@dataclass(frozen=True, slots=True)
class EntriesItem:
    """Every (id, digest) the sender holds under `path` (possibly none)."""

    path: Path
    entries: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Query:
    """Initiator -> responder: compare my children of these nodes; list yours under these paths."""

    geometry: Geometry
    root: tuple[bytes, int] | None  # first query only: my root (truncated hash, size)
    nodes: tuple[NodeItem, ...] = ()
    wants: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """Responder -> initiator: what differs one level further, and what was put off."""

    same_root: bool = False
    nodes: tuple[NodeItem, ...] = ()
    entries: tuple[EntriesItem, ...] = ()
    deferred_nodes: tuple[Path, ...] = field(default=())
    deferred_wants: tuple[Path, ...] = field(default=())


def _path_obj(path: Path) -> bytes:
    return bytes(path)


def _node_obj(item: NodeItem) -> list[object]:
    hashes = b"".join(digest for digest, size in item.slots if size)
    return [_path_obj(item.path), [size for _, size in item.slots], hashes]


def _entries_obj(item: EntriesItem) -> list[object]:
    flat: list[bytes] = []
    for item_id, digest in item.entries:
        flat.append(item_id)
        flat.append(digest)
    return [_path_obj(item.path), flat]


def encode_query(query: Query) -> bytes:
    """Deterministic bytes of a query."""
    g = query.geometry
    return packb(
        {
            "v": PROTOCOL_VERSION,
            "g": [g.fanout, g.depth, g.hash_bytes, g.inline_ids],
            "r": None if query.root is None else list(query.root),
            "n": [_node_obj(item) for item in query.nodes],
            "w": [_path_obj(path) for path in query.wants],
        }
    )


def encode_answer(answer: Answer) -> bytes:
    """Deterministic bytes of an answer."""
    return packb(
        {
            "v": PROTOCOL_VERSION,
            "s": answer.same_root,
            "n": [_node_obj(item) for item in answer.nodes],
            "e": [_entries_obj(item) for item in answer.entries],
            "dn": [_path_obj(path) for path in answer.deferred_nodes],
            "dw": [_path_obj(path) for path in answer.deferred_wants],
        }
    )


def _decode_path(obj: object, geometry: Geometry, *, max_len: int) -> Path:
    raw = as_bytes(obj, "path", 0, max_len)
    if any(digit >= geometry.fanout for digit in raw):
        raise DecodeError(f"path {raw.hex()} has a digit >= fanout {geometry.fanout}")
    return tuple(raw)


def _decode_node(obj: object, geometry: Geometry) -> NodeItem:
    raw_path, raw_sizes, raw_hashes = as_list(obj, "node item", 3)
    path = _decode_path(raw_path, geometry, max_len=geometry.depth - 1)
    hb = geometry.hash_bytes
    sizes = [
        as_int(size, "subtree size", 0, _MAX_SIZE)
        for size in as_list(raw_sizes, "node sizes", geometry.fanout)
    ]
    length = hb * sum(1 for size in sizes if size)
    blob = as_bytes(raw_hashes, "node hashes", length, length)
    empty = bytes(hb)
    slots: list[WireSlot] = []
    at = 0
    for size in sizes:
        if size:
            slots.append((blob[at : at + hb], size))
            at += hb
        else:
            slots.append((empty, 0))
    return NodeItem(path, tuple(slots))


def _decode_entries(obj: object, geometry: Geometry) -> EntriesItem:
    raw_path, flat = as_list(obj, "entries item", 2)
    path = _decode_path(raw_path, geometry, max_len=geometry.depth)
    values = as_list(flat, "entries")
    if len(values) % 2:
        raise DecodeError("entries: odd length, expected id/digest pairs")
    pairs = tuple(
        (
            as_bytes(values[at], "entry id", 1, MAX_ID_BYTES),
            as_bytes(values[at + 1], "entry digest", 1, MAX_DIGEST_BYTES),
        )
        for at in range(0, len(values), 2)
    )
    return EntriesItem(path, pairs)


def _checked(data: bytes, what: str, max_bytes: int) -> dict[object, object]:
    if len(data) > max_bytes:
        raise DiffProtocolError(f"{what} of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    msg = as_dict(unpackb(data, what), what)
    if msg.get("v") != PROTOCOL_VERSION:
        raise DiffProtocolError(f"{what}: protocol version {msg.get('v')!r}, expected 1")
    return msg


def decode_query(data: bytes, max_bytes: int) -> Query:
    """Parse and shape-check a query; raises DiffProtocolError."""
    try:
        msg = _checked(data, "diff query", max_bytes)
        raw_fanout, raw_depth, raw_hash_bytes, raw_inline = as_list(msg.get("g"), "geometry", 4)
        geometry = Geometry(
            as_int(raw_fanout, "fanout", 2, 256),
            as_int(raw_depth, "depth", 1, 16),
            as_int(raw_hash_bytes, "hash_bytes", MIN_HASH_BYTES, MAX_HASH_BYTES),
            as_int(raw_inline, "inline_ids", 0, MAX_INLINE_IDS),
        )
        hash_bytes = geometry.hash_bytes
        root: tuple[bytes, int] | None = None
        if msg.get("r") is not None:
            root_hash, root_size = as_list(msg.get("r"), "root", 2)
            root = (
                as_bytes(root_hash, "root hash", hash_bytes, hash_bytes),
                as_int(root_size, "root size", 0, _MAX_SIZE),
            )
        nodes = tuple(_decode_node(item, geometry) for item in as_list(msg.get("n"), "nodes"))
        wants = tuple(
            _decode_path(item, geometry, max_len=geometry.depth)
            for item in as_list(msg.get("w"), "wants")
        )
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed diff query: {exc}") from exc
    return Query(geometry, root, nodes, wants)


def decode_answer(data: bytes, geometry: Geometry, max_bytes: int) -> Answer:
    """Parse and shape-check an answer for a session with `geometry`; raises DiffProtocolError."""
    try:
        msg = _checked(data, "diff answer", max_bytes)
        same_root = msg.get("s")
        if not isinstance(same_root, bool):
            raise DecodeError("same_root flag is not a bool")
        return Answer(
            same_root,
            tuple(_decode_node(item, geometry) for item in as_list(msg.get("n"), "nodes")),
            tuple(_decode_entries(item, geometry) for item in as_list(msg.get("e"), "entries")),
            tuple(
                _decode_path(p, geometry, max_len=geometry.depth - 1)
                for p in as_list(msg.get("dn"), "deferred nodes")
            ),
            tuple(
                _decode_path(p, geometry, max_len=geometry.depth)
                for p in as_list(msg.get("dw"), "deferred wants")
            ),
        )
    except DecodeError as exc:
        raise DiffProtocolError(f"malformed diff answer: {exc}") from exc
