"""The SKS /pks/hashquery wire format (as SKS and Hockeypuck speak it for recon).

Request body: a 4-octet big-endian count, then per digest a 4-octet length and the digest
(16 octets, MD5). Response (`pgp/keys`): a 4-octet count of keys, then per key a 4-octet
length and the binary transferable key, then CRLF, which SKS expects as a terminator.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshkp.errors import InvalidRequest

DIGEST_BYTES = 16
# Digests per hashquery. SKS asks in batches of 100; a bound keeps one request from making the
# server assemble an unbounded reply.
MAX_DIGESTS = 1000


def parse_hashquery(body: bytes) -> list[bytes]:
    """The digests of a hashquery request body; raise InvalidRequest for a malformed one."""
    if len(body) < 4:
        raise InvalidRequest("hashquery body is shorter than its 4-octet count")
    count = int.from_bytes(body[:4], "big")
    if count > MAX_DIGESTS:
        raise InvalidRequest(f"hashquery asks for {count} digests; at most {MAX_DIGESTS} per call")
    pos, digests = 4, []
    for index in range(count):
        if pos + 4 > len(body):
            raise InvalidRequest(f"hashquery body ends before digest {index} of {count}")
        length = int.from_bytes(body[pos : pos + 4], "big")
        pos += 4
        if length != DIGEST_BYTES:
            raise InvalidRequest(f"hashquery digest {index} has {length} octets, not 16 (MD5)")
        if pos + length > len(body):
            raise InvalidRequest(f"hashquery body ends inside digest {index}")
        digests.append(body[pos : pos + length])
        pos += length
    if pos != len(body):
        raise InvalidRequest(f"hashquery body has {len(body) - pos} octets after its digests")
    return digests


def encode_hashquery_request(digests: Sequence[bytes]) -> bytes:
    """A request body asking for `digests` (tests, and a future SKS recon client)."""
    parts = [len(digests).to_bytes(4, "big")]
    for digest in digests:
        parts.append(len(digest).to_bytes(4, "big") + digest)
    return b"".join(parts)


def encode_hashquery_response(keys: Sequence[bytes]) -> bytes:
    """The reply carrying the binary keys found."""
    parts = [len(keys).to_bytes(4, "big")]
    for key in keys:
        parts.append(len(key).to_bytes(4, "big") + key)
    parts.append(b"\r\n")
    return b"".join(parts)


def decode_hashquery_response(body: bytes) -> list[bytes]:
    """The binary keys of a hashquery reply (tests); raise InvalidRequest if malformed."""
    if len(body) < 4:
        raise InvalidRequest("hashquery reply is shorter than its count")
    count = int.from_bytes(body[:4], "big")
    pos, keys = 4, []
    for _ in range(count):
        length = int.from_bytes(body[pos : pos + 4], "big")
        pos += 4
        keys.append(body[pos : pos + length])
        pos += length
    if body[pos:] != b"\r\n":
        raise InvalidRequest("hashquery reply lacks its CRLF terminator")
    return keys
