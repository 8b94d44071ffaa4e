"""Red-team finding 5: uploads built to cost verification CPU. An RSA key with a ~3070-bit
public exponent is refused before any exponentiation, and one upload stops verifying once it
has used Limits.upload_cpu_ms."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

from meshkp.limits import Limits
from meshkp.openpgp.keytext import Rejected, parse_keytext
from meshkp.openpgp.packet import Packet, Tag

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def mpi(value: int) -> bytes:
    return value.bit_length().to_bytes(2, "big") + value.to_bytes((value.bit_length() + 7) // 8, "big")


def hostile_rsa_key(rng: random.Random, bad_sigs: int = 65) -> bytes:
    """An RSA-3072 key whose exponent is ~3070 bits, with `bad_sigs` forged self-signatures."""
    n = rng.getrandbits(3072) | (1 << 3071) | 1
    e = rng.getrandbits(3070) | (1 << 3069) | 1
    body = bytes([4]) + (1_600_000_000).to_bytes(4, "big") + bytes([1]) + mpi(n) + mpi(e)
    packets = [Packet(Tag.PUBLIC_KEY, body), Packet(Tag.USER_ID, b"hostile <h@example.org>")]
    uid = packets[1].body
    for i in range(bad_sigs):
        hashed = bytes([5, 2]) + (1_600_000_000 + i).to_bytes(4, "big")
        head = bytes([4, 0x13, 1, 8]) + len(hashed).to_bytes(2, "big") + hashed
        # The right 16-bit digest prefix (RFC 9580 §5.2.4), so only the RSA check can say no.
        digest = hashlib.sha256(b"\x99" + len(body).to_bytes(2, "big") + body + b"\xb4"
                                + len(uid).to_bytes(4, "big") + uid + head + b"\x04\xff"
                                + len(head).to_bytes(4, "big")).digest()
        sig = head + b"\x00\x00" + digest[:2] + mpi(rng.getrandbits(3070) | 1)
        packets.append(Packet(Tag.SIGNATURE, sig))
    return b"".join(packet.encode() for packet in packets)


def test_a_huge_rsa_exponent_is_refused_before_verifying() -> None:
    items = parse_keytext(hostile_rsa_key(random.Random(5)))
    assert len(items) == 1 and isinstance(items[0], Rejected)
    assert "public exponent" in items[0].reason, items[0].reason


def test_an_upload_stops_verifying_at_its_cpu_budget() -> None:
    keyring = b"".join((FIXTURES / name).read_bytes() for name in
                       ("gentoo-l1.asc", "tails.asc", "alice_signed.asc", "weasel.asc",
                        "steven-12345.asc", "ecc_keys.asc"))
    whole = parse_keytext(keyring)
    assert not any("CPU budget" in getattr(item, "reason", "") for item in whole)
    cut = parse_keytext(keyring, dataclasses.replace(Limits(), upload_cpu_ms=1))
    assert len(cut) < len(whole) + 1
    last = cut[-1]
    assert isinstance(last, Rejected) and "CPU budget of 1 ms" in last.reason
    assert cut.cpu_ms > 0
