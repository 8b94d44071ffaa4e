"""Frame codec: version byte, type byte, msgpack map; every decode failure is a WireError.

A frame is the plaintext that the keyring seals (meshkp/net/crypto.py):

    +---------+------+-------------------------------+
    | version | type | msgpack map (str keys)        |
    | 1 byte  | 1 B  | rest of the frame             |
    +---------+------+-------------------------------+

Map keys that start with "_" belong to the wire layer: "_from" carries the sender's node id and
is lifted into `Frame.sender` (checked against the frame's signature, meshkp/net/frameauth.py).
Message classes must not use such keys in their to_map().

Never pickle: PySyncObj's pickle on the wire is remote code execution (STYLE.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from meshkp.errors import FrameTooLarge, UnsupportedWireVersion, WireError

# 2: every frame is signed by its sender and carries replay data (meshkp/net/frameauth.py).
# A version-1 node's frames are dropped and counted as reason "version", and it drops ours.
WIRE_VERSION = 2
HEADER_BYTES = 2  # version + type

# The target size of one sealed UDP datagram, as memberlist's udpSendBuf: it stays under the
# 1,500-byte Ethernet MTU with room for IP/UDP headers and tunnels, so gossip never fragments.
UDP_DATAGRAM_BYTES = 1400

# A TCP frame (push-pull state, replication batches). A hostile or broken peer could otherwise
# make us buffer an unbounded body; 8 MiB holds the full membership of ~20,000 nodes or one
# maximal key record (limits.key_bytes = 4 MiB) with room. memberlist caps push-pull at 20 MiB.
TCP_FRAME_BYTES = 8 * 1024 * 1024

# Strings are ids, addresses and names; bulk data travels as bin. Bounds decode work per string.
MAX_STR_BYTES = 64 * 1024

SENDER_KEY = "_from"
_RESERVED_PREFIX = "_"

# Node ids on the wire: configured ids are validated to this length (meshkp/net/identity.py).
MAX_SENDER_CHARS = 64


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded message: its type code, its body map and, when carried, the sender's node id."""

    type: int
    body: dict[str, Any] = field(default_factory=dict)
    sender: str | None = None


def encode_frame(frame: Frame, max_bytes: int) -> bytes:
    """Serialise a frame; FrameTooLarge above max_bytes, WireError for unencodable bodies."""
    if not 0 <= frame.type <= 255:
        raise WireError(f"frame type {frame.type} does not fit in one byte")
    body = frame.body
    if any(isinstance(k, str) and k.startswith(_RESERVED_PREFIX) for k in body):
        raise WireError("frame body uses a reserved '_' key; rename the field in to_map()")
    if frame.sender is not None:
        body = {**body, SENDER_KEY: frame.sender}
    try:
        packed: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"frame type {frame.type} body is not msgpack-encodable: {exc}") from exc
    data = bytes((WIRE_VERSION, frame.type)) + packed
    if len(data) > max_bytes:
        raise FrameTooLarge(f"frame type {frame.type} is {len(data)} bytes, bound is {max_bytes}")
    return data


def decode_frame(data: bytes, max_bytes: int) -> Frame:
    """Parse a frame; any malformed, oversize or unexpected input raises WireError, nothing else."""
    if len(data) > max_bytes:
        raise FrameTooLarge(f"frame is {len(data)} bytes, bound is {max_bytes}")
    if len(data) < HEADER_BYTES + 1:
        raise WireError(f"frame is {len(data)} bytes, shorter than a header and an empty map")
    if data[0] != WIRE_VERSION:
        raise UnsupportedWireVersion(f"wire version {data[0]}, this node speaks {WIRE_VERSION}")
    frame_type = data[1]
    payload = data[HEADER_BYTES:]
    size = len(payload)
    try:
        body = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=size,
            max_str_len=min(size, MAX_STR_BYTES),
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,  # no ext types at all: nothing on our wire uses them
        )
    # msgpack raises a zoo (ExtraData, FormatError, StackError, ValueError, UnicodeDecodeError...);
    # the contract is that a peer's bytes only ever produce WireError.
    except Exception as exc:
        raise WireError(f"frame type {frame_type} body is not valid msgpack: {exc}") from exc
    if not isinstance(body, dict):
        raise WireError(f"frame type {frame_type} body is a {type(body).__name__}, not a map")
    if not all(isinstance(k, str) for k in body):
        raise WireError(f"frame type {frame_type} body has non-string keys")
    sender = body.pop(SENDER_KEY, None)
    if sender is not None and not _valid_sender(sender):
        raise WireError(f"frame type {frame_type} carries an invalid sender id")
    for key in body:
        if key.startswith(_RESERVED_PREFIX):
            raise WireError(f"frame type {frame_type} carries unknown reserved key {key!r}")
    return Frame(type=frame_type, body=body, sender=sender)


def _valid_sender(sender: object) -> bool:
    return isinstance(sender, str) and 0 < len(sender) <= MAX_SENDER_CHARS
