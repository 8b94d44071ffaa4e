"""Hypothesis against a real server: truncated and mutated real keys POSTed to /pks/add, and
random lookup variables. The server must never answer 500, and input it rejects (4xx) must
leave the store exactly as it was (key count and a known key's bytes)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshkp.openpgp.armor import dearmor
from tests.integration.conftest import ServerProcess, fixture_bytes

pytestmark = pytest.mark.integration

KNOWN = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"  # alice_signed.asc, stored before fuzzing
ARMORED = [fixture_bytes(n) for n in ("alice_signed.asc", "test-key.asc", "steven-12345.asc",
                                      "ecc_keys.asc", "test-key-revoke.asc")]
BINARY = [dearmor(text)[0] for text in ARMORED]
# Examples per fuzz test; MESHKP_FUZZ_EXAMPLES=2000 for a deep run.
FUZZ_EXAMPLES = int(os.environ.get("MESHKP_FUZZ_EXAMPLES", "120"))
FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=False,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(meshkp_server: ServerProcess) -> Iterator[ServerProcess]:
    assert meshkp_server.add(fixture_bytes("alice_signed.asc")).status == 200
    yield meshkp_server


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate"]))
        if action == "truncate":
            del data[at:]
        elif action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def snapshot(server: ServerProcess) -> tuple[int, bytes]:
    return server.key_count(), server.lookup(op="get", search="0x" + KNOWN).body


def check_upload(server: ServerProcess, send: callable) -> None:  # type: ignore[valid-type]
    before = snapshot(server)
    reply = send()
    assert reply.status in (200, 400, 413), (reply.status, reply.text)
    if reply.status != 200:
        assert snapshot(server) == before, reply.text


@FUZZ_SETTINGS
@given(keytext=mutated(ARMORED))
def test_mutated_armored_keys(server: ServerProcess, keytext: bytes) -> None:
    check_upload(server, lambda: server.add(keytext))


@FUZZ_SETTINGS
@given(binary=mutated(BINARY))
def test_mutated_binary_keys_as_multipart_file(server: ServerProcess, binary: bytes) -> None:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"keytext\"; "
        f"filename=\"key.gpg\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + binary + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    check_upload(server, lambda: server.request("POST", "/pks/add", body=body, headers=headers))


@FUZZ_SETTINGS
@given(body=st.one_of(st.binary(max_size=300), mutated([b"keytext=" + ARMORED[0][:200]])),
       ctype=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data",
                              "multipart/form-data; boundary=zz", "text/plain", ""]))
def test_random_add_bodies(server: ServerProcess, body: bytes, ctype: str) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    check_upload(server, lambda: server.request("POST", "/pks/add", body=body, headers=headers))


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@FUZZ_SETTINGS
@given(op=st.one_of(st.sampled_from(["get", "index", "vindex", "stats", "hget"]), _TEXT),
       search=st.one_of(_TEXT, st.from_regex(r"0x[0-9A-Fa-f]{0,70}", fullmatch=True)),
       options=st.one_of(st.sampled_from(["mr", "json", "mr,nm", ""]), _TEXT),
       exact=st.sampled_from(["on", "off", ""]))
def test_random_lookups(server: ServerProcess, op: str, search: str, options: str,
                        exact: str) -> None:
    reply = server.lookup(op=op, search=search, options=options, exact=exact)
    assert reply.status in (200, 400, 404, 501), (op, search, reply.status, reply.text)


@FUZZ_SETTINGS
@given(body=st.one_of(st.binary(max_size=200),
                      st.lists(st.binary(min_size=16, max_size=16), max_size=5).map(
                          lambda ds: len(ds).to_bytes(4, "big")
                          + b"".join(len(d).to_bytes(4, "big") + d for d in ds))))
def test_random_hashquery_bodies(server: ServerProcess, body: bytes) -> None:
    reply = server.request("POST", "/pks/hashquery", body=body)
    assert reply.status in (200, 400), reply.status
