"""Deterministic msgpack: the same value gives the same bytes on every node.

msgpack keeps a dict's insertion order, so two replicas that built the same state in a
different order would otherwise encode it differently. `packb` sorts every map by key and
refuses unordered containers (a type sorts its members into a list itself). `unpackb` turns
every decoding failure into `DecodeError`, and the `as_*` checkers validate the decoded
shape, so a peer's bytes never crash a caller.
"""

from __future__ import annotations

import msgpack

from crdt.errors import DecodeError

# A node id names a replica in every version vector. A peer could otherwise grow every
# record it touches by sending huge ids; real ids are a hex Ed25519 key (64) or a host name.
MAX_NODE_ID_CHARS = 255
# msgpack's largest unsigned integer; counters and clock fields above it cannot be encoded.
MAX_UINT64 = 2**64 - 1

_KEY_RANK = {bool: 0, int: 1, str: 2, bytes: 3}


def _map_key(key: object) -> tuple[int, object]:
    rank = _KEY_RANK.get(type(key))
    if rank is None:
        raise TypeError(f"map key of type {type(key).__name__} has no canonical order")
    return (rank, key)


def canonical(obj: object) -> object:
    """Return `obj` with every dict rebuilt in sorted key order; refuse sets."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj, key=_map_key)}
    if isinstance(obj, list | tuple):
        return [canonical(item) for item in obj]
    if isinstance(obj, set | frozenset):
        raise TypeError("sets have no canonical order: sort them into a list first")
    return obj


def packb(obj: object) -> bytes:
    """Encode `obj` deterministically (maps sorted by key, bin type for bytes)."""
    data: bytes = msgpack.packb(canonical(obj), use_bin_type=True)
    return data


def _refuse_ext(code: int, data: bytes) -> object:
    raise DecodeError(f"msgpack extension type {code} is not part of any crdt encoding")


def unpackb(data: bytes, what: str) -> object:
    """Decode msgpack bytes; any failure (truncated, trailing data, bad type) is DecodeError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=False, ext_hook=_refuse_ext
        )
    except DecodeError:
        raise
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        raise DecodeError(f"{what}: not valid msgpack ({exc})") from exc


def as_list(obj: object, what: str, length: int | None = None) -> list[object]:
    """`obj` as a list, optionally of exactly `length` items."""
    if not isinstance(obj, list):
        raise DecodeError(f"{what}: expected a list, got {type(obj).__name__}")
    if length is not None and len(obj) != length:
        raise DecodeError(f"{what}: expected {length} items, got {len(obj)}")
    return obj


def as_dict(obj: object, what: str) -> dict[object, object]:
    """`obj` as a dict."""
    if not isinstance(obj, dict):
        raise DecodeError(f"{what}: expected a map, got {type(obj).__name__}")
    return obj


def as_int(obj: object, what: str, minimum: int = 0, maximum: int = MAX_UINT64) -> int:
    """`obj` as an int in [minimum, maximum] (bools are refused)."""
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise DecodeError(f"{what}: expected an integer, got {type(obj).__name__}")
    if not minimum <= obj <= maximum:
        raise DecodeError(f"{what}: {obj} is outside [{minimum}, {maximum}]")
    return obj


def as_str(obj: object, what: str, max_chars: int) -> str:
    """`obj` as a str of at most `max_chars` characters."""
    if not isinstance(obj, str):
        raise DecodeError(f"{what}: expected a string, got {type(obj).__name__}")
    if len(obj) > max_chars:
        raise DecodeError(f"{what}: {len(obj)} characters, more than {max_chars}")
    return obj


def as_bytes(obj: object, what: str, min_len: int, max_len: int) -> bytes:
    """`obj` as bytes whose length is in [min_len, max_len]."""
    if not isinstance(obj, bytes):
        raise DecodeError(f"{what}: expected bytes, got {type(obj).__name__}")
    if not min_len <= len(obj) <= max_len:
        raise DecodeError(f"{what}: {len(obj)} bytes, outside [{min_len}, {max_len}]")
    return obj


def as_node_id(obj: object, what: str) -> str:
    """`obj` as a non-empty node id of at most MAX_NODE_ID_CHARS characters."""
    node = as_str(obj, what, MAX_NODE_ID_CHARS)
    if not node:
        raise DecodeError(f"{what}: empty node id")
    return node
