"""Validation of msgpack fields from peers, and the bounds on what a peer can make us hold.

Every validator raises WireError naming the message, the field and what was wrong; the transport
counts and drops such frames, so hostile input never reaches the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from meshkp.errors import WireError
from meshkp.net.addr import Addr
from meshkp.swim.types import Status

# --- Bounds on what a peer can make us hold, each with what it protects against. -------------
# Counters (sequence numbers, incarnations) fit msgpack's int64; larger would not round-trip.
MAX_COUNTER = 2**63 - 1
# How far news may move a known member's incarnation at once. A member raises its own by one per
# refutation, meta change, leave or restart, so a million is far beyond any honest gap; a larger
# jump is a forged claim meant to push the member to MAX_COUNTER, where it could never refute
# again (red-team finding: one Suspect(n1, 2**63 - 1) cut n1 out for good). Reaching the
# maximum now takes 2**43 forged frames instead of one.
MAX_INCARNATION_JUMP = 1 << 20
# Node ids are names or key fingerprints (64 hex chars); longer ids only bloat every message.
MAX_NODE_ID_CHARS = 128
# DNS names are at most 253 characters; anything longer is not an address.
MAX_HOST_CHARS = 253
# Node meta (memberlist MetaMaxSize): it rides in every alive message and push-pull entry.
MAX_META_BYTES = 512
MAX_META_ENTRIES = 16
# A compound frame is at most udp_frame_bytes; memberlist counts parts in one byte.
MAX_COMPOUND_PARTS = 255
# Push-pull carries the whole table: 10,000 members is ~1 MB, far above any planned mesh, and
# stops a peer from making us allocate an unbounded list.
MAX_PUSH_PULL_MEMBERS = 10_000
# Ed25519 public keys and signatures carried by membership statements (empty: not signed yet).
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# Delegate state in push-pull (replication summary); memberlist caps push state at 20 MB.
MAX_USER_STATE_BYTES = 16 * 1024 * 1024


def packb(obj: object) -> bytes:
    """msgpack-encode with bin type for bytes (the one encoding used for size and for the wire)."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def get_field(m: Mapping[str, Any], key: str, where: str) -> Any:
    if type(m) is not dict and not isinstance(m, Mapping):  # exact-dict fast path: msgpack maps
        raise WireError(f"{where}: body must be a map, got {type(m).__name__}")
    if key not in m:
        raise WireError(f"{where}: missing field {key!r}")
    return m[key]


def check_int(v: Any, what: str, where: str, low: int, high: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise WireError(f"{where}: {what} must be an integer in {low}..{high}, got {v!r}")
    return v


def get_uint(m: Mapping[str, Any], key: str, where: str, maximum: int = MAX_COUNTER) -> int:
    return check_int(get_field(m, key, where), key, where, 0, maximum)


def get_bool(m: Mapping[str, Any], key: str, where: str) -> bool:
    v = get_field(m, key, where)
    if not isinstance(v, bool):
        raise WireError(f"{where}: {key} must be a boolean, got {v!r}")
    return v


def check_text(v: Any, what: str, where: str, max_chars: int, allow_empty: bool = False) -> str:
    if not isinstance(v, str) or len(v) > max_chars or (not v and not allow_empty):
        raise WireError(f"{where}: {what} must be a string of 1..{max_chars} characters")
    return v


def get_node_id(m: Mapping[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    return check_text(get_field(m, key, where), key, where, MAX_NODE_ID_CHARS, allow_empty)


def check_addr(v: Any, what: str, where: str) -> Addr:
    if not isinstance(v, list) and not isinstance(v, tuple) or len(v) != 2:
        raise WireError(f"{where}: {what} must be [host, port]")
    host = check_text(v[0], what, where, MAX_HOST_CHARS)
    return (host, check_int(v[1], f"{what} port", where, 1, 65535))


def get_addr(m: Mapping[str, Any], key: str, where: str) -> Addr:
    return check_addr(get_field(m, key, where), key, where)


def check_meta(v: Any, where: str) -> dict[str, str]:
    if type(v) is dict and not v:
        return {}  # the common case, checked without the costlier ABC test below
    if not isinstance(v, Mapping) or len(v) > MAX_META_ENTRIES:
        raise WireError(f"{where}: meta must be a map of at most {MAX_META_ENTRIES} entries")
    if not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise WireError(f"{where}: meta keys and values must be strings")
    meta = dict(v)
    if meta and len(packb(meta)) > MAX_META_BYTES:
        raise WireError(f"{where}: meta exceeds {MAX_META_BYTES} bytes")
    return meta


def check_proof(v: Any, what: str, where: str, size: int) -> bytes:
    """A key or signature: bytes of exactly `size`, or empty (a statement not signed yet)."""
    if not isinstance(v, bytes) or len(v) not in (0, size):
        raise WireError(f"{where}: {what} must be {size} bytes (or empty)")
    return v


def get_proof(m: Mapping[str, Any], key: str, where: str, size: int) -> bytes:
    return check_proof(get_field(m, key, where), key, where, size)


def check_status(v: Any, where: str) -> Status:
    if not isinstance(v, int) or isinstance(v, bool) or v not in Status._value2member_map_:
        raise WireError(f"{where}: unknown member status {v!r}")
    return Status(v)
