"""ASCII armor (RFC 9580 §6): decode every block of an upload, encode with CRC24."""

from __future__ import annotations

import base64
import binascii
import re

from meshkp.errors import ArmorError
from meshkp.openpgp.crc24_fold import crc24_folded

_BEGIN = re.compile(rb"^-----BEGIN PGP ([A-Z ,/0-9]+)-----\s*$")
_END = re.compile(rb"^-----END PGP ([A-Z ,/0-9]+)-----\s*$")
_HEADER = re.compile(rb"^[A-Za-z0-9-]+: ")
_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB
# From this size on, big-integer folds beat the byte loop (meshkp/openpgp/crc24_fold.py).
FOLD_BYTES = 1024


def _crc24_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return table


_TABLE = _crc24_table()


def _after_zero_byte(table: list[int]) -> list[int]:
    """`table` with one more zero byte fed through the register after each entry."""
    return [((crc << 8) & 0xFFFFFF) ^ _TABLE[crc >> 16] for crc in table]


# Slicing by 6 bytes: _SLICES[k][b] is what byte b adds to the register when 5 - k bytes follow
# it in the slice. The CRC is linear, so a slice's register is the XOR of its six bytes' parts
# (the first three XORed with the register before it). In pure Python this is 2.3x faster than
# a byte at a time: 11 µs instead of 25 µs for a small key's 430 bytes, which every armored
# upload pays (docs/benchmarks.md, issue 14).
_SLICES = [_TABLE]
for _ in range(5):
    _SLICES.insert(0, _after_zero_byte(_SLICES[0]))


def crc24(data: bytes) -> int:
    """The armor checksum of RFC 9580 §6.1."""
    if len(data) >= FOLD_BYTES:
        return crc24_folded(data)
    crc = _CRC24_INIT
    whole = len(data) - len(data) % 6
    t0, t1, t2, t3, t4, t5 = _SLICES
    octets = iter(data[:whole])
    for a, b, c, d, e, f in zip(octets, octets, octets, octets, octets, octets, strict=True):
        crc = (t0[a ^ (crc >> 16)] ^ t1[b ^ ((crc >> 8) & 0xFF)] ^ t2[c ^ (crc & 0xFF)]
               ^ t3[d] ^ t4[e] ^ t5[f])
    table = _TABLE
    for byte in data[whole:]:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ byte]
    return crc


def is_armored(data: bytes) -> bool:
    """True when the input is armored text rather than binary packets.

    Binary OpenPGP starts with a packet header, whose bit 7 is always set (RFC 9580 §4.2);
    text never starts with such a byte. Looking for "-----BEGIN PGP" anywhere instead would
    misread a binary key whose user ID contains that string.
    """
    stripped = data.lstrip().removeprefix(b"\xef\xbb\xbf")  # editors add a UTF-8 BOM to text
    return bool(stripped) and not stripped[0] & 0x80


def dearmor(data: bytes) -> list[bytes]:
    """Decode every armored block in `data`, in order. Text between blocks is ignored."""
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    blocks: list[bytes] = []
    index = 0
    while index < len(lines):
        begin = _BEGIN.match(lines[index].strip())
        index += 1
        if not begin:
            continue
        block, index = _decode_block(lines, index, begin.group(1).decode())
        blocks.append(block)
    if not blocks:
        raise ArmorError("no '-----BEGIN PGP ...-----' armor header found; send an armored key")
    return blocks


def _decode_block(lines: list[bytes], index: int, label: str) -> tuple[bytes, int]:
    # Armor headers ("Comment: ...") run until the first blank line (RFC 9580 §6.2).
    while index < len(lines) and _HEADER.match(lines[index].strip()):
        index += 1
    body: list[bytes] = []
    checksum: bytes | None = None
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if _END.match(line):
            return _finish_block(b"".join(body), checksum, label), index
        if not line:
            continue
        if line.startswith(b"=") and len(line) == 5:
            checksum = line[1:]
            continue
        body.append(line)
    raise ArmorError(f"armor block 'PGP {label}' has no END line; the upload is truncated")


def _finish_block(text: bytes, checksum: bytes | None, label: str) -> bytes:
    try:
        payload = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ArmorError(f"armor block 'PGP {label}' is not valid base64: {exc}") from None
    if checksum is not None:
        try:
            expected = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except (binascii.Error, ValueError):
            raise ArmorError(f"armor block 'PGP {label}' has a malformed CRC24 line") from None
        if crc24(payload) != expected:
            raise ArmorError(
                f"armor block 'PGP {label}' fails its CRC24 check; the text was altered in transit"
            )
    return payload


def armor(data: bytes, label: str = "PUBLIC KEY BLOCK", comment: str | None = None) -> str:
    """Armor binary data with a CRC24 line, 64 base64 characters per line."""
    encoded = base64.b64encode(data).decode("ascii")
    lines = [f"-----BEGIN PGP {label}-----"]
    if comment:
        lines.append(f"Comment: {comment}")
    lines.append("")
    lines.extend(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii"))
    lines.append(f"-----END PGP {label}-----")
    return "\n".join(lines) + "\n"
