"""Real GnuPG (gpg + dirmngr) against a real `meshkp serve`: send, receive, search, locate,
refresh, and "No data" for a missing key. Each client runs in a fresh GNUPGHOME (mode 700)
whose daemons are killed afterwards (tests/gpgtools.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.openpgp.armor import dearmor
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.signature import parse_signature
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.integration.conftest import ServerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.gpg,
    pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg dirmngr)"),
]

OWNER_UID = "Owen Owner (meshkp test) <owen.owner@test.example>"
OWNER_EMAIL = "owen.owner@test.example"


def ks(home: Path, server: ServerProcess, *args: str) -> tuple[int, str]:
    """Run a gpg keyserver command; (exit code, stdout + stderr)."""
    done = gpg(home, "--keyserver", server.hkp, *args)
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


def generate(home: Path, uid: str) -> str:
    """A fresh Ed25519 key with a Curve25519 encryption subkey; its fingerprint."""
    made = gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
               "--quick-gen-key", uid, "ed25519", "sign", "never")
    assert made.returncode == 0, made.stderr
    fpr = fingerprint_of(home, uid)
    sub = gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
              "--quick-add-key", fpr, "cv25519", "encr", "never")
    assert sub.returncode == 0, sub.stderr
    return fpr


def fingerprint_of(home: Path, user: str) -> str:
    listed = gpg(home, "--with-colons", "--list-keys", user).stdout.decode()
    return next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))


def signers_of(home: Path, fpr: str) -> set[str]:
    """Long key IDs of every signature gpg holds on the key (colon listing, sig records)."""
    listed = gpg(home, "--with-colons", "--list-sigs", fpr).stdout.decode()
    return {line.split(":")[4] for line in listed.splitlines() if line.startswith("sig:")}


@pytest.fixture(scope="module")
def owner_key(meshkp_server: ServerProcess) -> Iterator[str]:
    """A key made by gpg and uploaded with `gpg --send-keys`; its fingerprint."""
    with gnupg_home() as home:
        fpr = generate(home, OWNER_UID)
        code, out = ks(home, meshkp_server, "--send-keys", fpr)
        assert code == 0, out
    yield fpr


@pytest.mark.parametrize("spec", ["fingerprint", "long key ID", "short key ID"])
def test_send_keys_then_recv_keys(meshkp_server: ServerProcess, owner_key: str, spec: str) -> None:
    wanted = {"fingerprint": owner_key, "long key ID": owner_key[-16:],
              "short key ID": owner_key[-8:]}[spec]
    with gnupg_home() as home:
        code, out = ks(home, meshkp_server, "--recv-keys", wanted)
        assert code == 0, out
        assert "imported: 1" in out
        assert fingerprint_of(home, OWNER_EMAIL) == owner_key


@pytest.mark.parametrize("search", [OWNER_EMAIL, "Owen Owner", "owen"])
def test_search_keys_with_colons(meshkp_server: ServerProcess, owner_key: str, search: str) -> None:
    with gnupg_home() as home:
        code, out = ks(home, meshkp_server, "--with-colons", "--search-keys", search)
        assert code == 0, out
        lines = out.splitlines()
        assert any(line.startswith(f"pub:{owner_key}:") for line in lines), out
        assert any(line.startswith("uid:Owen Owner") and "owen.owner@test.example" in line
                   for line in lines), out


def test_locate_external_keys(meshkp_server: ServerProcess, owner_key: str) -> None:
    with gnupg_home() as home:
        code, out = ks(home, meshkp_server, "--auto-key-locate", "clear,keyserver",
                       "--locate-external-keys", OWNER_EMAIL)
        assert code == 0, out
        assert owner_key in out
        assert fingerprint_of(home, OWNER_EMAIL) == owner_key


def test_refresh_keys_gets_a_new_self_signature(meshkp_server: ServerProcess) -> None:
    """The owner adds a user ID (a new self-signature) and sends; a holder's refresh gets it."""
    with gnupg_home() as owner, gnupg_home() as holder:
        fpr = generate(owner, "Rita Refresh <rita@test.example>")
        assert ks(owner, meshkp_server, "--send-keys", fpr)[0] == 0
        assert ks(holder, meshkp_server, "--recv-keys", fpr)[0] == 0
        added = gpg(owner, "--passphrase", "", "--pinentry-mode", "loopback",
                    "--quick-add-uid", fpr, "Rita Refresh <rita@second.example>")
        assert added.returncode == 0, added.stderr
        assert ks(owner, meshkp_server, "--send-keys", fpr)[0] == 0

        before = gpg(holder, "--with-colons", "--list-keys", fpr).stdout.decode()
        assert "rita@second.example" not in before
        code, out = ks(holder, meshkp_server, "--refresh-keys")
        assert code == 0, out
        after = gpg(holder, "--with-colons", "--list-keys", fpr).stdout.decode()
        assert "rita@second.example" in after


def test_refresh_keys_gets_a_new_third_party_signature(
    meshkp_server: ServerProcess, owner_key: str
) -> None:
    """Another key certifies the owner's; a holder who asks for third-party signatures gets it.

    GnuPG >= 2.2.17 keeps only self-signatures from keyservers by default (self-sigs-only,
    after the 2019 certificate flooding), so the holder opts out and knows the signer's key.
    """
    with gnupg_home() as holder, gnupg_home() as signer:
        code, out = ks(holder, meshkp_server, "--recv-keys", owner_key)
        assert code == 0, out
        signer_fpr = generate(signer, "Sam Signer <sam.signer@test.example>")
        assert ks(signer, meshkp_server, "--recv-keys", owner_key)[0] == 0
        signed = gpg(signer, "--yes", "--passphrase", "", "--pinentry-mode", "loopback",
                     "--quick-sign-key", owner_key)
        assert signed.returncode == 0, signed.stderr
        code, out = ks(signer, meshkp_server, "--send-keys", owner_key)
        assert code == 0, out
        signer_public = gpg(signer, "--export", signer_fpr).stdout
        assert gpg(holder, "--import", input=signer_public).returncode == 0

        assert signer_fpr[-16:] not in signers_of(holder, owner_key)
        code, out = ks(holder, meshkp_server, "--keyserver-options", "no-self-sigs-only",
                       "--refresh-keys", owner_key)
        assert code == 0, out
        assert signer_fpr[-16:] in signers_of(holder, owner_key)


def test_missing_key_shows_no_data(meshkp_server: ServerProcess) -> None:
    with gnupg_home() as home:
        code, out = ks(home, meshkp_server, "--recv-keys", "0x" + "0123456789ABCDEF" * 2 + "01234567")
        assert code != 0 and "No data" in out, out
        # gpg words a search with no result (404) differently: "not found on keyserver".
        code, out = ks(home, meshkp_server, "--with-colons", "--search-keys",
                       "nobody.at.all@nowhere.example")
        assert code != 0 and "not found" in out, out


def test_concurrent_uploads_of_one_key_lose_no_signature(meshkp_server: ServerProcess) -> None:
    """Four signers upload their copy of one key at once, repeatedly: the union survives."""
    copies: list[bytes] = []
    signer_ids: set[bytes] = set()
    with gnupg_home() as owner:
        fpr = generate(owner, "Cora Concurrent <cora@test.example>")
        exported = gpg(owner, "--armor", "--export", fpr).stdout
    for n in range(4):
        with gnupg_home() as signer:
            signer_fpr = generate(signer, f"Signer {n} <signer{n}@test.example>")
            signer_ids.add(bytes.fromhex(signer_fpr[-16:]))
            assert gpg(signer, "--import", input=exported).returncode == 0
            signed = gpg(signer, "--yes", "--passphrase", "", "--pinentry-mode", "loopback",
                         "--quick-sign-key", fpr)
            assert signed.returncode == 0, signed.stderr
            copies.append(gpg(signer, "--armor", "--export", fpr).stdout)

    failures: list[str] = []

    def upload(keytext: bytes) -> None:
        for _ in range(3):
            reply = meshkp_server.add(keytext)
            if reply.status != 200:
                failures.append(reply.text)

    threads = [threading.Thread(target=upload, args=(copy,)) for copy in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    served = meshkp_server.lookup(op="get", search="0x" + fpr)
    issuers = {
        parse_signature(p.body).issuer_key_id
        for p in parse_packets(dearmor(served.body)[0])
        if p.tag == Tag.SIGNATURE
    }
    assert signer_ids <= issuers
