"""POST /pks/add bodies on a node with replication on: x-consistency is read by the add handler
from the one bounded read of the upload, so body errors keep their status.

Regression: an x-consistency middleware used to read the form itself and swallow its errors,
which turned a broken multipart body into a 500 and an oversized chunked upload into a 400
(the body was half consumed when the add handler read it again).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.integration.replication_mesh import Mesh, armored, fingerprint

pytestmark = pytest.mark.integration

UPLOAD_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def mesh2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh.start(tmp_path_factory.mktemp("addbody"), 2, "--upload-bytes", str(UPLOAD_LIMIT),
                      "--sync-interval", "3600")
    try:
        yield mesh
    finally:
        mesh.close()
        for log in sorted(mesh.root.glob("*-server.log")):
            assert "event=http_bug" not in log.read_text(errors="replace"), log


def _multipart(boundary: str, fields: dict[str, bytes]) -> bytes:
    body = b""
    for name, value in fields.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
                 + value + b"\r\n")
    return body + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("body", [
    b"--x\r\nbroken",
    b"--x\r\nContent-Disposition: form-data; name=\"keytext\"\r\n\r\nunterminated",
    b"--x\r\nContent-Disposition: form-data; name=\"keytext\"\r\n"
    b"Content-Type: text/plain; charset=nonexistent\r\n\r\nabc\r\n--x--\r\n",
    b"--x\r\nContent-Disposition: form-data; name=\"keytext\"\r\n"
    b"Content-Transfer-Encoding: unknown\r\n\r\nabc\r\n--x--\r\n",
    b"garbage without any boundary",
])
def test_broken_multipart_is_400(mesh2: Mesh, body: bytes) -> None:
    before = mesh2.status(mesh2[0])["records"]
    reply = mesh2[0].request("POST", "/pks/add", body=body,
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert reply.status == 400, reply.text
    assert mesh2.status(mesh2[0])["records"] == before


def test_oversized_chunked_upload_is_413(mesh2: Mesh) -> None:
    conn = http.client.HTTPConnection(mesh2[0].host, mesh2[0].port, timeout=30)
    chunks = (b"keytext=" + b"A" * 16384 if i == 0 else b"A" * 16384 for i in range(8))
    status: int | None = None
    try:
        conn.request("POST", "/pks/add", body=chunks, encode_chunked=True, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"})
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close the connection once the limit is crossed
    finally:
        conn.close()
    assert status in (413, None), status


def test_oversized_upload_by_content_length_is_413(mesh2: Mesh) -> None:
    reply = mesh2[0].add(b"A" * UPLOAD_LIMIT, **{"x-consistency": "all"})
    assert reply.status == 413 and "upload_bytes" in reply.text


def test_consistency_asked_in_a_form_field_is_honoured(mesh2: Mesh) -> None:
    reply = mesh2[0].add(armored(800), **{"x-consistency": "all"})
    assert reply.status == 200 and reply.headers["x-consistency-acks"] == "2/2", reply.text
    assert mesh2.has_key(mesh2[1], fingerprint(800))  # read-your-write on the other node
    body = _multipart("b42", {"keytext": armored(801).encode(), "x-consistency": b"all"})
    reply = mesh2[1].request("POST", "/pks/add", body=body,
                             headers={"Content-Type": "multipart/form-data; boundary=b42"})
    assert reply.status == 200 and reply.headers["x-consistency-acks"] == "2/2", reply.text
    assert mesh2.has_key(mesh2[0], fingerprint(801))
    bad = mesh2[0].add(armored(802), **{"x-consistency": "most"})
    assert bad.status == 400 and "x-consistency" in bad.text
    assert not mesh2.has_key(mesh2[0], fingerprint(802))  # refused before anything was stored


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled sample `name` in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exposed on /metrics")


def test_replication_metrics_show_pushes_bytes_and_lag(mesh2: Mesh) -> None:
    reply = mesh2[0].add(armored(810), **{"x-consistency": "all"})
    assert reply.status == 200, reply.text
    sender = mesh2[0].request("GET", "/metrics").text
    receiver = mesh2[1].request("GET", "/metrics").text
    assert _metric(sender, "meshkp_replication_bytes_out_total") > 0
    assert _metric(sender, "meshkp_replication_push_batches_total") >= 1
    assert _metric(sender, "meshkp_replication_pending_pushes") == 0
    assert _metric(receiver, "meshkp_replication_records_applied_total") >= 1
    assert _metric(receiver, "meshkp_replication_lag_seconds_count") >= 1
