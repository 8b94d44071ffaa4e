"""CRC24 of a long input (RFC 9580 §6.1) with big-integer folds instead of a loop per byte.

The CRC is the remainder of a polynomial division over GF(2): with the message M(x) (its
bits, first byte highest) of n bytes and the register's initial value I(x),

    crc = (M(x)·x^24 + I(x)·x^(8n)) mod P(x),   P = 0x1864CFB (degree 24).

Split the dividend V = H·x^h + L at h = 2^k: V ≡ H·(x^h mod P) + L, and x^h mod P has 24
bits, so the product is a XOR of at most 24 shifted copies of H. Python does each shift and
XOR on the whole number in C, so the dividend halves per step in ~12 big-integer operations,
and the byte loop that cost ~1.6 ms for a 14 KB key (armoring a key read for the first time,
on the event loop) becomes ~0.15 ms. Short inputs stay on the table loop of armor.py, which
is faster below about 1 KB.
"""

from __future__ import annotations

_POLY = 0x1864CFB
_INIT = 0xB704CE
# Below this many bits the dividend is reduced bit by bit (a few dozen steps).
_TAIL_BITS = 64


def _times_x_mod(a: int, b: int) -> int:
    """a·b mod P for two remainders (degree < 24): the shift-and-add of GF(2)[x]."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0x1000000:
            a ^= _POLY
    return product


def _powers() -> list[tuple[int, ...]]:
    """For each k, the exponents of the terms of x^(2^k) mod P (what H is shifted by)."""
    remainder, found = 2, []  # x^(2^0) = x
    for _ in range(48):  # 2^47 bits: any input a process can hold
        found.append(tuple(bit for bit in range(24) if remainder >> bit & 1))
        remainder = _times_x_mod(remainder, remainder)
    return found


_SHIFTS = _powers()


def crc24_folded(data: bytes) -> int:
    """The armor checksum of `data`, equal to the byte loop's for every input."""
    length = len(data)
    dividend = (int.from_bytes(data, "big") << 24) ^ (_INIT << (8 * length))
    bits = 8 * length + 24  # the dividend's degree is below this
    while bits > _TAIL_BITS:
        k = (bits - 1).bit_length() - 1
        half = 1 << k  # half < bits <= 2·half
        high = dividend >> half
        folded = dividend & ((1 << half) - 1)
        for shift in _SHIFTS[k]:
            folded ^= high << shift
        dividend = folded
        bits = max(half, bits - half + 23)
    for bit in range(bits - 1, 23, -1):
        if dividend >> bit & 1:
            dividend ^= _POLY << (bit - 24)
    return dividend
