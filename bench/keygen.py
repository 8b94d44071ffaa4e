"""A fast generator of real, validly self-signed Ed25519 OpenPGP keys, for tests and benchmarks.

Each key is a v4 transferable public key (RFC 9580 §10.1):
- primary key, algorithm 22 (EdDSA legacy, curve Ed25519, OID 1.3.6.1.4.1.11591.15.1,
  the point 0x40||pk as an MPI; RFC 9580 §5.5.5.5) — the form GnuPG 2.2 understands;
- user ID "Name N <userN@example.org>" with a positive certification (0x13) whose hashed
  subpackets are creation time, key flags and issuer fingerprint, and an unhashed issuer key ID;
- optionally a cv25519 ECDH encryption subkey (RFC 9580 §5.5.5.6) with a 0x18 binding.

Keys are derived from (seed, index), so the same arguments always give the same bytes and a
test can regenerate any key. Generation uses several processes: `python -m bench.keygen`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meshkp.openpgp.armor import armor
from meshkp.openpgp.packet import Packet

ED25519_OID = bytes.fromhex("2b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
CV25519_OID = bytes.fromhex("2b060104019755010501")  # 1.3.6.1.4.1.3029.1.5.1
# ECDH KDF parameters (RFC 9580 §11.5): reserved 0x01, SHA-256 (8), AES-128 (7).
ECDH_KDF = bytes([3, 1, 8, 7])
ALGO_ECDH, ALGO_EDDSA_LEGACY = 18, 22
HASH_SHA256 = 8
# 2024-01-01T00:00:00Z: a fixed creation time keeps the output reproducible.
DEFAULT_CREATED = 1704067200
DEFAULT_SEED = b"meshkp-keygen"
_RAW = (Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """One generated key: its binary transferable form and what a test wants to check."""

    index: int
    fingerprint: bytes
    user_id: str
    data: bytes


def user_id_for(index: int) -> str:
    return f"Name {index} <user{index}@example.org>"


def generate_key(
    index: int,
    seed: bytes = DEFAULT_SEED,
    created: int = DEFAULT_CREATED,
    with_subkey: bool = True,
    user_id: str | None = None,
) -> GeneratedKey:
    """The key number `index` of the deterministic sequence named by `seed`."""
    secret = hashlib.sha256(seed + b"/primary/" + index.to_bytes(8, "big")).digest()
    signer = Ed25519PrivateKey.from_private_bytes(secret)
    primary_body = _eddsa_key_body(signer.public_key().public_bytes(*_RAW), created)
    fingerprint = _v4_fingerprint(primary_body)
    uid = (user_id or user_id_for(index)).encode()
    # Key flags 0x03: certify + sign (RFC 9580 §5.2.3.29).
    uid_sig = _sign(
        signer, fingerprint, 0x13, created, key_flags=0x03,
        hashed_context=_key_hash_input(primary_body) + b"\xb4" + len(uid).to_bytes(4, "big")
        + uid,
    )
    packets = [Packet(6, primary_body), Packet(13, uid), Packet(2, uid_sig)]
    if with_subkey:
        sub_secret = hashlib.sha256(seed + b"/subkey/" + index.to_bytes(8, "big")).digest()
        sub_public = X25519PrivateKey.from_private_bytes(sub_secret).public_key()
        subkey_body = _ecdh_key_body(sub_public.public_bytes(*_RAW), created)
        # Key flags 0x0C: encrypt communications + storage.
        binding = _sign(
            signer, fingerprint, 0x18, created, key_flags=0x0C,
            hashed_context=_key_hash_input(primary_body) + _key_hash_input(subkey_body),
        )
        packets += [Packet(14, subkey_body), Packet(2, binding)]
    data = b"".join(packet.encode() for packet in packets)
    return GeneratedKey(index, fingerprint, uid.decode(), data)


def _mpi(value: bytes) -> bytes:
    """RFC 9580 §3.2: bit count, then the magnitude without leading zero octets."""
    value = value.lstrip(b"\0")
    bits = int.from_bytes(value, "big").bit_length()
    return bits.to_bytes(2, "big") + value


def _eddsa_key_body(public: bytes, created: int) -> bytes:
    return (
        b"\x04" + created.to_bytes(4, "big") + bytes([ALGO_EDDSA_LEGACY, len(ED25519_OID)])
        + ED25519_OID + _mpi(b"\x40" + public)
    )


def _ecdh_key_body(public: bytes, created: int) -> bytes:
    return (
        b"\x04" + created.to_bytes(4, "big") + bytes([ALGO_ECDH, len(CV25519_OID)])
        + CV25519_OID + _mpi(b"\x40" + public) + ECDH_KDF
    )


def _key_hash_input(body: bytes) -> bytes:
    """A v4 key as hashed into signatures (RFC 9580 §5.2.4): 0x99, two-octet length, body."""
    return b"\x99" + len(body).to_bytes(2, "big") + body


def _v4_fingerprint(body: bytes) -> bytes:
    return hashlib.sha1(_key_hash_input(body)).digest()


def _subpacket(kind: int, data: bytes) -> bytes:
    # One-octet length suffices: every subpacket here is < 192 octets (RFC 9580 §5.2.3.7).
    return bytes([len(data) + 1, kind]) + data


def _sign(
    signer: Ed25519PrivateKey,
    fingerprint: bytes,
    sig_type: int,
    created: int,
    key_flags: int,
    hashed_context: bytes,
) -> bytes:
    """A v4 signature packet body over `hashed_context` (RFC 9580 §5.2.3, §5.2.4)."""
    hashed = (
        _subpacket(2, created.to_bytes(4, "big"))
        + _subpacket(27, bytes([key_flags]))
        + _subpacket(33, b"\x04" + fingerprint)
    )
    unhashed = _subpacket(16, fingerprint[-8:])
    prefix = (
        bytes([4, sig_type, ALGO_EDDSA_LEGACY, HASH_SHA256])
        + len(hashed).to_bytes(2, "big") + hashed
    )
    trailer = b"\x04\xff" + len(prefix).to_bytes(4, "big")
    digest = hashlib.sha256(hashed_context + prefix + trailer).digest()
    # Legacy EdDSA signs the digest itself, not the message (RFC 9580 §5.2.3.3, GnuPG).
    raw = signer.sign(digest)
    return (
        prefix + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2]
        + _mpi(raw[:32]) + _mpi(raw[32:])
    )


def _generate_range(args: tuple[int, int, bytes, int, bool]) -> bytes:
    start, stop, seed, created, with_subkey = args
    return b"".join(
        generate_key(i, seed, created, with_subkey).data for i in range(start, stop)
    )


def generate_keyring(
    count: int,
    start: int = 0,
    seed: bytes = DEFAULT_SEED,
    created: int = DEFAULT_CREATED,
    with_subkey: bool = True,
    processes: int | None = None,
    chunk: int = 2000,
) -> Iterator[bytes]:
    """Binary keyring pieces for keys start..start+count, in order, generated in parallel."""
    ranges = [
        (lo, min(lo + chunk, start + count), seed, created, with_subkey)
        for lo in range(start, start + count, chunk)
    ]
    workers = processes or os.cpu_count() or 1
    if workers == 1 or len(ranges) == 1:
        yield from map(_generate_range, ranges)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_generate_range, ranges)


def write_keyring(path: str, count: int, armored: bool = False, **kwargs: object) -> int:
    """Write `count` keys to `path` (binary, or one armored block); return bytes written."""
    pieces = generate_keyring(count, **kwargs)  # type: ignore[arg-type]
    with open(path, "wb") as out:
        if armored:
            out.write(armor(b"".join(pieces)).encode())
        else:
            for piece in pieces:
                out.write(piece)
        return out.tell()


@click.command()
@click.option("--count", type=int, default=100_000, show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True)
@click.option("--armor/--binary", "armored", default=False)
@click.option("--no-subkey", is_flag=True, help="Primary key and user ID only.")
@click.option("--processes", type=int, default=None, help="Default: one per core.")
def main(count: int, out_path: str, armored: bool, no_subkey: bool, processes: int | None) -> None:
    """Write COUNT generated Ed25519 keys to OUT and print keys/s."""
    began = time.perf_counter()
    size = write_keyring(
        out_path, count, armored=armored, with_subkey=not no_subkey, processes=processes
    )
    elapsed = time.perf_counter() - began
    click.echo(
        f"keys={count} bytes={size} seconds={elapsed:.2f} keys_per_s={count / elapsed:.0f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
