"""The benchmark key generator makes real keys: GnuPG imports them and checks every self-signature."""

from __future__ import annotations

import hashlib

import pytest

from bench.keygen import generate_key, generate_keyring, user_id_for
from tests.gpgtools import GPG, gnupg_home, gpg


def test_generation_is_deterministic_and_distinct() -> None:
    assert generate_key(7).data == generate_key(7).data
    assert generate_key(7).fingerprint != generate_key(8).fingerprint
    assert generate_key(7, seed=b"other").fingerprint != generate_key(7).fingerprint


def test_keyring_pieces_are_the_keys_in_order() -> None:
    ring = b"".join(generate_keyring(5, start=3, processes=2, chunk=2))
    assert ring == b"".join(generate_key(i).data for i in range(3, 8))


def test_fingerprint_is_sha1_of_the_primary_key_packet() -> None:
    key = generate_key(1, with_subkey=False)
    # New-format header 0xC6, one-octet length (RFC 9580 §4.2.1.1); fingerprint per §5.5.4.2.
    assert key.data[0] == 0xC6
    body = key.data[2 : 2 + key.data[1]]
    assert key.fingerprint == hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed")
def test_gnupg_imports_keys_with_valid_self_signatures(tmp_path) -> None:
    keys = [generate_key(i, with_subkey=i % 2 == 0) for i in range(6)]
    ring = tmp_path / "ring.gpg"
    ring.write_bytes(b"".join(key.data for key in keys))
    with gnupg_home() as home:
        imported = gpg(home, "--import", str(ring))
        assert b"imported: 6" in imported.stderr, imported.stderr
        listing = gpg(home, "--check-sigs", "--with-colons", "--fixed-list-mode")
        lines = [line.split(":") for line in listing.stdout.decode().splitlines()]
    fingerprints = [f[9] for f in lines if f[0] == "fpr"]
    for key in keys:
        assert key.fingerprint.hex().upper() in fingerprints
    uids = [f[9] for f in lines if f[0] == "uid"]
    assert uids == [user_id_for(i) for i in range(6)]
    sig_status = [f[1] for f in lines if f[0] == "sig"]
    # One 0x13 per key and a 0x18 per subkey; "!" means GnuPG verified it.
    assert sig_status == ["!"] * (6 + 3)
    assert sum(1 for f in lines if f[0] == "sub") == 3
