"""Just enough DNS (RFC 1035) to ask for SRV records (RFC 2782) and read the answer. No I/O.

Bounded everywhere a hostile or broken resolver could push: message size, name length, label
count, compression-pointer jumps, record counts. Every failure is a DiscoveryError.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from meshkp.errors import DiscoveryError

TYPE_A = 1
TYPE_AAAA = 28
TYPE_SRV = 33
CLASS_IN = 1

HEADER = struct.Struct("!HHHHHH")  # RFC 1035 §4.1.1: id, flags, qd, an, ns, ar counts
FLAG_RD = 0x0100  # recursion desired
FLAG_QR = 0x8000  # this is a response
FLAG_TC = 0x0200  # truncated: retry over TCP (RFC 1035 §4.2.1)
RCODE_MASK = 0x000F
RCODE_NXDOMAIN = 3

MAX_MESSAGE = 65535  # a DNS message over TCP cannot be longer (2-byte length prefix)
MAX_NAME = 255  # RFC 1035 §2.3.4
MAX_LABEL = 63
# Pointer jumps while reading one name. A legitimate name needs at most one per label;
# without a bound, two pointers at each other loop forever.
MAX_POINTER_JUMPS = 64
# Records we look at per section; a k8s headless service with hundreds of pods fits.
MAX_RECORDS = 1024


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV answer: where a member listens (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(slots=True)
class SrvAnswer:
    """The SRV records of a response and the addresses the additional section gave for targets."""

    rcode: int = 0
    truncated: bool = False
    records: list[SrvRecord] = field(default_factory=list)
    addresses: dict[str, list[str]] = field(default_factory=dict)


def encode_name(name: str) -> bytes:
    """Encode a dotted name as length-prefixed labels (RFC 1035 §3.1)."""
    name = name.rstrip(".")
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) <= MAX_LABEL:
            raise DiscoveryError(f"DNS name {name!r} has an empty or over-long label")
        out += bytes((len(raw),)) + raw
    out += b"\x00"
    if len(out) > MAX_NAME:
        raise DiscoveryError(f"DNS name {name!r} is longer than {MAX_NAME} bytes")
    return bytes(out)


def build_query(query_id: int, name: str, qtype: int = TYPE_SRV) -> bytes:
    """A standard recursive query for one (name, type, IN) question."""
    return HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        "!HH", qtype, CLASS_IN
    )


def _read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """Read a possibly compressed name (RFC 1035 §4.1.4); return it and the offset after it."""
    labels: list[str] = []
    total = 0
    jumps = 0
    end: int | None = None
    while True:
        if offset >= len(msg):
            raise DiscoveryError("DNS name runs past the end of the message")
        length = msg[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(msg):
                raise DiscoveryError("DNS compression pointer is truncated")
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise DiscoveryError("DNS compression pointers loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            continue
        if length & 0xC0:
            raise DiscoveryError(f"DNS label type {length >> 6} is not supported")
        offset += 1
        if length == 0:
            break
        if offset + length > len(msg):
            raise DiscoveryError("DNS label runs past the end of the message")
        total += length + 1
        if total > MAX_NAME:
            raise DiscoveryError("DNS name is longer than 255 bytes")
        labels.append(msg[offset : offset + length].decode("ascii", errors="replace").lower())
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def _read_record(msg: bytes, offset: int) -> tuple[str, int, bytes, int, int]:
    """Read one resource record; return (name, type, rdata, rdata offset, next offset)."""
    name, offset = _read_name(msg, offset)
    if offset + 10 > len(msg):
        raise DiscoveryError("DNS record header is truncated")
    rtype, _rclass, _ttl, rdlength = struct.unpack_from("!HHIH", msg, offset)
    offset += 10
    if offset + rdlength > len(msg):
        raise DiscoveryError("DNS record data runs past the end of the message")
    return name, rtype, msg[offset : offset + rdlength], offset, offset + rdlength


def parse_srv_response(msg: bytes, query_id: int) -> SrvAnswer:
    """Parse a response to build_query(query_id, ...); raise DiscoveryError if malformed."""
    if len(msg) > MAX_MESSAGE:
        raise DiscoveryError("DNS message is larger than 65535 bytes")
    if len(msg) < HEADER.size:
        raise DiscoveryError("DNS message is shorter than its header")
    rid, flags, qd, an, ns, ar = HEADER.unpack_from(msg)
    if rid != query_id or not flags & FLAG_QR:
        raise DiscoveryError("DNS message is not the response to our query")
    answer = SrvAnswer(rcode=flags & RCODE_MASK, truncated=bool(flags & FLAG_TC))
    if answer.rcode or answer.truncated:
        return answer
    if max(qd, an, ns, ar) > MAX_RECORDS:
        raise DiscoveryError("DNS message claims too many records")
    offset = HEADER.size
    for _ in range(qd):
        _, offset = _read_name(msg, offset)
        offset += 4
    for index in range(an + ns + ar):
        in_answer = index < an
        in_additional = index >= an + ns
        _name, rtype, rdata, rdata_at, offset = _read_record(msg, offset)
        if in_answer and rtype == TYPE_SRV:
            if len(rdata) < 7:
                raise DiscoveryError("DNS SRV record is too short")
            priority, weight, port = struct.unpack_from("!HHH", rdata)
            target, _ = _read_name(msg, rdata_at + 6)
            answer.records.append(SrvRecord(priority, weight, port, target))
        elif in_additional and rtype == TYPE_A and len(rdata) == 4:
            answer.addresses.setdefault(_name, []).append(str(ipaddress.IPv4Address(rdata)))
        elif in_additional and rtype == TYPE_AAAA and len(rdata) == 16:
            answer.addresses.setdefault(_name, []).append(str(ipaddress.IPv6Address(rdata)))
    return answer


def parse_resolv_conf(text: str, limit: int = 3) -> list[str]:
    """Nameserver addresses from resolv.conf text (glibc uses at most 3: MAXNS)."""
    servers: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            host = parts[1].split("%")[0]
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            servers.append(host)
    return servers[:limit]
