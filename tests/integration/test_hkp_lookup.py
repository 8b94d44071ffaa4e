"""GET /pks/lookup, /pks/hashquery, /pks/health and /metrics against a real `meshkp serve`:
every search form, the mr format, each status code path, and what must be ignored."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from meshkp.http.sks import decode_hashquery_response, encode_hashquery_request
from meshkp.openpgp.armor import dearmor
from meshkp.openpgp.framing import parse_packets
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.pubkey import parse_public_key
from tests.gpgtools import GPG, gnupg_home, gpg
from tests.integration.conftest import ServerProcess, fixture_bytes

pytestmark = pytest.mark.integration

ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"
ALICE_SUBKEY_ID = "6A5B700BF3D13863"
STEVEN_EMAIL = "steven-test@example.com"
POSTEO = "9671C8185C6519ABB4E8AD9FA4EB82D2573F7C77"  # expired 2021-12-12
UID_REVOKED_KEY = "EBED28C0696C022C"
SKSDIGEST = "da84f40d830a7be2a3c0b7f2e146bfaa"  # SKS digest of sksdigest.asc (corpus README)
FIXTURE_KEYS = ("alice_signed.asc", "steven-12345.asc", "bare-email-posteo.asc",
                "test-key-uid-revoked.asc", "sksdigest.asc")
# A user ID with ':' (the mr field separator), '%' and non-ASCII: all must be %-escaped.
ODD_UID = "Jörg Tester: QA 100% <joerg@example.net>"


@pytest.fixture(scope="module")
def server(meshkp_server: ServerProcess) -> Iterator[ServerProcess]:
    for name in FIXTURE_KEYS:
        reply = meshkp_server.add(fixture_bytes(name))
        assert reply.status == 200, reply.text
    if GPG:
        with gnupg_home() as home:
            made = gpg(home, "--utf8-strings", "--passphrase", "", "--pinentry-mode", "loopback",
                       "--quick-gen-key", ODD_UID, "ed25519", "sign", "never")
            assert made.returncode == 0, made.stderr
            exported = gpg(home, "--armor", "--export", "joerg@example.net").stdout
        reply = meshkp_server.add(exported)
        assert reply.status == 200 and "added" in reply.text, reply.text
    yield meshkp_server


def primary_fingerprints(armored: bytes) -> list[str]:
    """Fingerprints of the primary keys in an armored reply (one block expected)."""
    blocks = dearmor(armored)
    assert len(blocks) == 1
    return [
        parse_public_key(p.body).fingerprint.hex().upper()
        for p in parse_packets(blocks[0])
        if p.tag == Tag.PUBLIC_KEY
    ]


# -- op=get: every search form ------------------------------------------------------------------

@pytest.mark.parametrize("search", [
    "0x" + ALICE, "0x" + ALICE.lower(), ALICE, "0x" + ALICE[-16:], "0x" + ALICE[-8:],
    "0x" + ALICE_SUBKEY_ID, "alice@example.com", "<alice@example.com>", "ALICE@Example.COM",
])
def test_get_finds_alice_by_every_form(server: ServerProcess, search: str) -> None:
    reply = server.lookup(op="get", search=search, options="mr")
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"].startswith("application/pgp-keys")
    assert reply.body.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert primary_fingerprints(reply.body) == [ALICE]


def test_get_exact_email_as_locate_external_keys_sends_it(server: ServerProcess) -> None:
    reply = server.lookup(op="get", options="mr", search="alice@example.com", exact="on")
    assert reply.status == 200
    assert primary_fingerprints(reply.body) == [ALICE]


def test_get_with_several_matches_gives_one_keyring(server: ServerProcess) -> None:
    reply = server.lookup(op="get", search="example.com")
    assert reply.status == 200
    found = primary_fingerprints(reply.body)
    assert len(found) >= 2 and ALICE in found
    assert reply.body.count(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") == 1


def test_get_unknown_key_is_404(server: ServerProcess) -> None:
    for search in ("0x" + "1" * 40, "0x1111111122222222", "nobody@nowhere.example", "zzyzxq"):
        reply = server.lookup(op="get", search=search)
        assert reply.status == 404, search
        assert "no key" in reply.text


@pytest.mark.parametrize("params", [
    {"op": "get", "search": "0x123"},
    {"op": "get", "search": "0xZZZZZZZZ"},
    {"op": "get", "search": "0x" + "A" * 39},
    {"op": "get", "search": ""},
    {"op": "get", "search": "   "},
    {"op": "get"},
    {"op": "get", "search": "!!! ??? ..."},
    {"op": "get", "search": "x" * 300},
    {"op": "index", "search": " ".join(f"w{i}" for i in range(20))},
    {"search": "alice"},
    {"op": "hget", "search": "nothex"},
    {"op": "hget", "search": "0x" + "a" * 31},
])
def test_malformed_search_is_400_with_a_reason(server: ServerProcess, params: dict[str, str]) -> None:
    reply = server.lookup(**params)
    assert reply.status == 400, (params, reply.status, reply.text)
    assert len(reply.text.strip()) > 10  # a reason, not just a status


@pytest.mark.parametrize("op", ["photo", "x-foo", "delete", "GETX"])
def test_unsupported_op_is_501(server: ServerProcess, op: str) -> None:
    reply = server.lookup(op=op, search="alice")
    assert reply.status == 501
    assert "op=" in reply.text


def test_unknown_variables_and_host_header_are_ignored(server: ServerProcess) -> None:
    plain = server.lookup(op="get", search="0x" + ALICE)
    noisy = server.lookup(
        op="get", search="0x" + ALICE, fingerprint="on", hash="on", x_whatever="1",
        options="mr,nm,bogus", headers={"Host": "evil.example.org:8080"},
    )
    assert noisy.status == 200
    assert noisy.body == plain.body
    other = server.request("GET", f"/pks/lookup?op=get&search=0x{ALICE}&&=&zzz",
                           headers={"Host": "keys.example"})
    assert other.status == 200 and other.body == plain.body


def test_head_request_has_no_body(server: ServerProcess) -> None:
    reply = server.request("HEAD", f"/pks/lookup?op=get&search=0x{ALICE}")
    assert reply.status == 200 and reply.body == b""


# -- op=index / op=vindex ---------------------------------------------------------------------

def test_index_mr_format(server: ServerProcess) -> None:
    reply = server.lookup(op="index", options="mr", search="alice@example.com")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text.endswith("\n")
    lines = reply.text.splitlines()
    assert lines[0] == "info:1:1"
    pub = lines[1].split(":")
    assert pub[:4] == ["pub", ALICE, "1", "2048"]
    assert pub[4] == "1345589945" and pub[5] == "" and pub[6] == ""
    assert lines[2].startswith("uid:alice <alice@example.com>:1345589945:")


def test_index_mr_count_matches_pub_lines(server: ServerProcess) -> None:
    reply = server.lookup(op="index", options="mr", search="example.com")
    lines = reply.text.splitlines()
    count = int(lines[0].split(":")[2])
    assert count >= 2
    assert count == sum(1 for line in lines if line.startswith("pub:"))


def test_index_mr_flags_expired_and_revoked(server: ServerProcess) -> None:
    expired = server.lookup(op="index", options="mr", search="support@posteo.de").text
    pub = next(line for line in expired.splitlines() if line.startswith("pub:")).split(":")
    assert pub[1] == POSTEO and pub[5] and "e" in pub[6]
    revoked = server.lookup(op="index", options="mr", search="0x" + UID_REVOKED_KEY).text
    uids = {line.split(":")[1]: line.split(":")[4] for line in revoked.splitlines()
            if line.startswith("uid:")}
    assert "r" in uids["revokeduid@example.com"]
    assert "r" not in uids["uid@example.com"]


@pytest.mark.skipif(GPG is None, reason="gpg is not installed (apt-get install gnupg)")
def test_index_mr_escapes_colon_percent_and_non_ascii(server: ServerProcess) -> None:
    reply = server.lookup(op="index", options="mr", search="joerg@example.net")
    assert reply.status == 200
    uid_line = next(line for line in reply.text.splitlines() if line.startswith("uid:"))
    escaped = uid_line.split(":")[1]
    assert escaped == "J%C3%B6rg Tester%3A QA 100%25 <joerg@example.net>"
    assert len(uid_line.split(":")) == 5
    reply.body.decode("ascii")  # the whole document is 7-bit


def test_index_and_vindex_html(server: ServerProcess) -> None:
    index = server.lookup(op="index", search="alice")
    assert index.status == 200 and index.headers["content-type"].startswith("text/html")
    assert ALICE in index.text and "alice &lt;alice@example.com&gt;" in index.text
    vindex = server.lookup(op="vindex", search="alice", fingerprint="on")
    assert vindex.status == 200
    assert "sig" in vindex.text and "selfsig" in vindex.text


def test_index_no_match_is_404(server: ServerProcess) -> None:
    assert server.lookup(op="index", options="mr", search="nobody@nowhere.example").status == 404
    assert server.lookup(op="vindex", search="0xDEADBEEF").status == 404


def test_free_text_is_and_of_keywords(server: ServerProcess) -> None:
    both = server.lookup(op="index", options="mr", search="steven test")
    assert both.status == 200 and "steven-test@example.com" in both.text
    assert server.lookup(op="index", options="mr", search="steven alice").status == 404
    hyphen = server.lookup(op="index", options="mr", search="steven-12345")
    assert hyphen.status == 200


# -- op=stats, op=hget, hashquery, health, metrics ---------------------------------------------

def test_stats_json_and_html(server: ServerProcess) -> None:
    for options in ("mr", "json"):
        stats = server.lookup(op="stats", options=options)
        assert stats.headers["content-type"].startswith("application/json")
        data = stats.json()
        assert isinstance(data, dict) and data["keys"] >= len(FIXTURE_KEYS)
    page = server.lookup(op="stats")
    assert page.headers["content-type"].startswith("text/html") and "keys" in page.text


def test_hget_by_sks_digest(server: ServerProcess) -> None:
    reply = server.lookup(op="hget", search=SKSDIGEST)
    assert reply.status == 200, reply.text
    assert reply.body.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert server.lookup(op="hget", search="0" * 32).status == 404


def test_hashquery_wire_format(server: ServerProcess) -> None:
    body = encode_hashquery_request([bytes.fromhex(SKSDIGEST), bytes(16)])
    reply = server.request("POST", "/pks/hashquery", body=body)
    assert reply.status == 200
    keys = decode_hashquery_response(reply.body)
    assert len(keys) == 1 and parse_packets(keys[0])[0].tag == Tag.PUBLIC_KEY
    empty = decode_hashquery_response(
        server.request("POST", "/pks/hashquery", body=encode_hashquery_request([])).body
    )
    assert empty == []


@pytest.mark.parametrize("body", [
    b"", b"\x00\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x01\x00\x00\x00\x05abcde",
    b"\xff\xff\xff\xff", encode_hashquery_request([bytes(16)]) + b"x",
])
def test_hashquery_malformed_is_400(server: ServerProcess, body: bytes) -> None:
    assert server.request("POST", "/pks/hashquery", body=body).status == 400


def test_health_and_metrics(server: ServerProcess) -> None:
    health = server.request("GET", "/pks/health")
    assert health.status == 200 and health.json()["status"] == "ok"  # type: ignore[index]
    metrics = server.request("GET", "/metrics")
    assert metrics.status == 200
    assert 'meshkp_http_requests_total{endpoint="/pks/lookup",op="get",status="200"}' in metrics.text
    assert re.search(r"^meshkp_keys \d", metrics.text, re.M)
    assert "meshkp_http_request_seconds_bucket" in metrics.text


def test_wrong_method_and_path(server: ServerProcess) -> None:
    assert server.request("POST", "/pks/lookup?op=get&search=alice").status == 405
    assert server.request("GET", "/pks/add").status == 405
    assert server.request("GET", "/pks/nothing").status == 404


def test_weird_query_encodings_never_500(server: ServerProcess) -> None:
    for raw in ("op=get&search=%FF%FE", "op=index&search=%00", "op=%ZZ&search=a",
                "op=get&search=0x%41%41", "op=index&options=mr&search=a%3Ab",
                "op=get&search=%E2%80%AE", "op=index&options=mr&search=caf%C3%A9"):
        reply = server.request("GET", "/pks/lookup?" + raw)
        assert reply.status in (200, 400, 404, 501), (raw, reply.status, reply.text)
