"""POST /pks/add against a real `meshkp serve`: outcomes, reply formats, status codes, limits,
revocation certificates, and that bad input leaves the store exactly as it was."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkp.openpgp.armor import armor, dearmor
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.signature import parse_signature
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.integration.conftest import ServerProcess, fixture_bytes, start_server

pytestmark = pytest.mark.integration

UPLOAD_LIMIT = 256 * 1024  # the server of this module runs with --upload-bytes 262144
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
TEST_KEY = "7C330458A06E162F"  # test-key.asc; test-key-revoke.asc is its bare revocation
REVOK_KEY = "0AAAE5A5B3ACD94D"  # revok_orig.asc / revok_cert.asc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    node = start_server(tmp_path_factory.mktemp("add") / "node",
                        "--upload-bytes", str(UPLOAD_LIMIT))
    try:
        yield node
    finally:
        node.stop()
        node.assert_no_bugs()


def snapshot(server: ServerProcess) -> tuple[int, bytes]:
    """What must not change after rejected input: the key count and a stored key's bytes."""
    known = server.lookup(op="get", search="0x" + ALICE)
    return server.key_count(), known.body if known.status == 200 else b""


def test_add_then_unchanged(server: ServerProcess) -> None:
    first = server.add(fixture_bytes("steven-12345.asc"))
    assert first.status == 200, first.text
    assert first.headers["content-type"].startswith("text/plain")
    assert first.text.startswith("1 added, 0 updated, 0 unchanged, 0 rejected")
    again = server.add(fixture_bytes("steven-12345.asc"))
    assert again.status == 200
    assert again.text.startswith("0 added, 0 updated, 1 unchanged, 0 rejected")


def test_update_merges_and_get_serves_union(server: ServerProcess) -> None:
    unsigned = server.add(fixture_bytes("alice_unsigned.asc"))
    assert unsigned.status == 200
    before = server.lookup(op="get", search="0x" + ALICE).body
    signed = server.add(fixture_bytes("alice_signed.asc"))
    assert signed.status == 200
    assert "updated" in signed.text or "added" in unsigned.text  # unsigned may already be there
    after = server.lookup(op="get", search="0x" + ALICE).body
    assert len(dearmor(after)[0]) > len(dearmor(before)[0])
    # Uploading the subset again changes nothing.
    assert "1 unchanged" in server.add(fixture_bytes("alice_unsigned.asc")).text
    assert server.lookup(op="get", search="0x" + ALICE).body == after


def test_json_reply_on_accept_or_mr(server: ServerProcess) -> None:
    for headers, fields in (({"Accept": "application/json"}, {}), ({}, {"options": "mr"})):
        reply = server.add(fixture_bytes("alice_signed.asc"), headers=headers, **fields)
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("application/json")
        data = reply.json()
        assert isinstance(data, dict) and data["unchanged"] == 1
        assert data["keys"][0]["fingerprint"] == ALICE
        assert data["keys"][0]["status"] == "unchanged"


def test_multipart_upload(server: ServerProcess) -> None:
    boundary = "meshkpboundary42"
    key = fixture_bytes("bare-email-posteo.asc")
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"keytext\"\r\n\r\n".encode()
        + key + f"\r\n--{boundary}--\r\n".encode()
    )
    reply = server.request("POST", "/pks/add", body=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert reply.status == 200, reply.text
    assert "9671C8185C6519ABB4E8AD9FA4EB82D2573F7C77" in reply.text


def test_several_keys_in_one_keytext_and_mixed_outcomes(server: ServerProcess) -> None:
    keytext = (fixture_bytes("test-key-uid-revoked.asc") + b"\n"
               + fixture_bytes("snowcrash_evaporated.asc") + b"\n"
               + fixture_bytes("alice_signed.asc"))
    reply = server.add(keytext, headers={"Accept": "application/json"})
    assert reply.status == 200  # something was accepted
    data = reply.json()
    assert isinstance(data, dict)
    statuses = [k["status"] for k in data["keys"]]
    assert statuses.count("rejected") == 1 and "unchanged" in statuses
    rejected = next(k for k in data["keys"] if k["status"] == "rejected")
    assert "no valid self-signature" in rejected["reason"]


def test_everything_rejected_is_400_and_store_unchanged(server: ServerProcess) -> None:
    before = snapshot(server)
    reply = server.add(fixture_bytes("snowcrash_evaporated.asc"))
    assert reply.status == 400
    assert "no valid self-signature" in reply.text
    assert snapshot(server) == before


def test_secret_key_is_rejected(server: ServerProcess) -> None:
    # A secret key packet (tag 5) in place of the public one: refused, never stored.
    public = dearmor(fixture_bytes("alice_signed.asc"))[0]
    assert public[0] in (0x99, 0xC6)
    secretish = bytes([0x95]) + public[1:] if public[0] == 0x99 else bytes([0xC5]) + public[1:]
    before = snapshot(server)
    reply = server.add(armor(secretish))
    assert reply.status == 400 and "secret" in reply.text
    assert snapshot(server) == before


GARBAGE = [
    b"hello world",
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!notbase64!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
    fixture_bytes("alice_signed.asc")[:700],  # truncated armor: no END line
    fixture_bytes("alice_signed.asc").replace(b"=", b"=A", 1),  # broken CRC line
    armor(b"\x99\x01\x0dshort"),  # truncated packet
    armor(b"\xc6\xff\x10\x00\x00\x00abc"),  # packet length beyond the data
    armor(b"\x8b\x05\x04\x00\x00\x00\x00"),  # indeterminate length
    armor(b"\xc6\xe1abc"),  # partial body length
    armor(b"\xb4\x03abc"),  # a user ID with no key before it
]


@pytest.mark.parametrize("keytext", GARBAGE, ids=range(len(GARBAGE)))
def test_malformed_keytext_is_400_and_store_unchanged(server: ServerProcess,
                                                      keytext: bytes | str) -> None:
    before = snapshot(server)
    reply = server.add(keytext)
    assert reply.status == 400, reply.text
    assert reply.text.strip()
    assert snapshot(server) == before


@pytest.mark.parametrize("body, ctype", [
    (b"", "application/x-www-form-urlencoded"),
    (b"keytext=", "application/x-www-form-urlencoded"),
    (b"other=1", "application/x-www-form-urlencoded"),
    (b"keytext=%20%0A", "application/x-www-form-urlencoded"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    (b"keytext=abc", ""),
])
def test_missing_or_empty_keytext_is_400(server: ServerProcess, body: bytes, ctype: str) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    reply = server.request("POST", "/pks/add", body=body, headers=headers)
    assert reply.status == 400, reply.text


def test_json_error_when_everything_rejected(server: ServerProcess) -> None:
    reply = server.add(b"hello", headers={"Accept": "application/json"})
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("application/json")
    assert "error" in json.loads(reply.body)


def test_upload_over_limit_is_413_by_content_length(server: ServerProcess) -> None:
    before = snapshot(server)
    body = b"keytext=" + b"A" * UPLOAD_LIMIT
    reply = server.request("POST", "/pks/add", body=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 413 and "upload_bytes" in reply.text
    assert snapshot(server) == before


def test_upload_over_limit_is_413_when_chunked(server: ServerProcess) -> None:
    import http.client

    before = snapshot(server)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    chunks = (b"keytext=" + b"A" * 65536 if i == 0 else b"A" * 65536 for i in range(8))
    try:
        conn.request("POST", "/pks/add", body=chunks, encode_chunked=True, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"})
        reply = conn.getresponse()
        assert reply.status == 413, reply.read()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close the connection as soon as the limit is crossed
    finally:
        conn.close()
    assert snapshot(server) == before


def test_bare_revocation_certificate_is_merged(server: ServerProcess) -> None:
    assert server.add(fixture_bytes("test-key.asc")).status == 200
    pub = server.lookup(op="index", options="mr", search="0x" + TEST_KEY).text.splitlines()[1]
    assert "r" not in pub.split(":")[6]
    reply = server.add(fixture_bytes("test-key-revoke.asc"))
    assert reply.status == 200 and "updated" in reply.text, reply.text
    pub = server.lookup(op="index", options="mr", search="0x" + TEST_KEY).text.splitlines()[1]
    assert "r" in pub.split(":")[6]
    assert "unchanged" in server.add(fixture_bytes("test-key-revoke.asc")).text


def test_revocation_for_unknown_key_is_rejected(server: ServerProcess) -> None:
    before = snapshot(server)
    reply = server.add(fixture_bytes("revok_cert.asc"))
    assert reply.status == 400
    assert REVOK_KEY in reply.text and "not on this server" in reply.text
    assert snapshot(server) == before
    assert server.add(fixture_bytes("revok_orig.asc")).status == 200
    assert "updated" in server.add(fixture_bytes("revok_cert.asc")).text


@pytest.mark.gpg
@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
def test_certification_sent_without_the_self_signature_is_kept(server: ServerProcess) -> None:
    """A signer uploads the owner's user ID with only their certification (no self-signature
    on it): merged into the stored copy, it is served and verifies in gpg."""
    with gnupg_home() as home:
        owner = _generate(home, "Olga Orphan <olga@orphan.example>")
        signer = _generate(home, "Sid Signer <sid@orphan.example>")
        assert "1 added" in server.add(gpg(home, "--armor", "--export", owner).stdout).text
        signed = gpg(home, "--yes", "--passphrase", "", "--pinentry-mode", "loopback",
                     "--local-user", signer, "--quick-sign-key", owner)
        assert signed.returncode == 0, signed.stderr
        exported = parse_packets(gpg(home, "--export", owner).stdout)
        signer_public = gpg(home, "--export", signer).stdout
    owner_id = bytes.fromhex(owner[-16:])
    upload = [p for p in exported
              if p.tag != Tag.SIGNATURE or parse_signature(p.body).issuer_key_id != owner_id]
    assert [p.tag for p in upload] == [Tag.PUBLIC_KEY, Tag.USER_ID, Tag.SIGNATURE]
    reply = server.add(armor(b"".join(p.encode() for p in upload)))
    assert reply.status == 200 and "1 updated" in reply.text, reply.text
    served = server.lookup(op="get", search="0x" + owner).body
    with gnupg_home() as holder:
        assert gpg(holder, "--import", input=signer_public).returncode == 0
        assert gpg(holder, "--import", input=served).returncode == 0
        checked = gpg(holder, "--with-colons", "--check-sigs", owner).stdout.decode()
    good = {line.split(":")[4] for line in checked.splitlines() if line.startswith("sig:!")}
    assert {owner[-16:], signer[-16:]} <= good, checked


def _generate(home: Path, uid: str) -> str:
    made = gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
               "--quick-gen-key", uid, "ed25519", "sign", "never")
    assert made.returncode == 0, made.stderr
    listed = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))


def test_acknowledged_upload_survives_kill_9(tmp_path: Path) -> None:
    node = start_server(tmp_path / "durable")
    try:
        assert node.add(fixture_bytes("steven-12345.asc")).status == 200
        node.stop(signal.SIGKILL)
        node = start_server(tmp_path / "durable")
        assert node.lookup(op="get", search="steven-test@example.com").status == 200
        assert node.key_count() == 1
    finally:
        node.stop()
        node.assert_no_bugs()
