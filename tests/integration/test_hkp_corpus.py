"""Every corpus file through a real server: each upload gets 200 or 400 (never 500), and every
accepted key is served by op=get, op=index&options=mr and op=vindex."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from meshkp.openpgp.armor import dearmor
from tests.integration.conftest import FIXTURES, ServerProcess

pytestmark = pytest.mark.integration

CORPUS = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".asc", ".gpg"))
_ACCEPTED = re.compile(r"^(?:added|updated|unchanged)\s+([0-9A-F]{32,64})", re.M)


@pytest.fixture(scope="module")
def accepted(meshkp_server: ServerProcess) -> Iterator[dict[str, str]]:
    """Fingerprint -> corpus file, for every key some upload accepted."""
    found: dict[str, str] = {}
    for path in CORPUS:
        data = path.read_bytes()
        if path.suffix == ".gpg":
            boundary = "corpusboundary"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"keytext\"; "
                    "filename=\"k.gpg\"\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
            reply = meshkp_server.request("POST", "/pks/add", body=body, headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}"})
        else:
            reply = meshkp_server.add(data)
        assert reply.status in (200, 400), (path.name, reply.status, reply.text)
        for fpr in _ACCEPTED.findall(reply.text):
            found.setdefault(fpr, path.name)
    yield found


def test_most_of_the_corpus_is_accepted(accepted: dict[str, str]) -> None:
    assert len(accepted) >= 30


def test_every_accepted_key_is_served(meshkp_server: ServerProcess,
                                      accepted: dict[str, str]) -> None:
    for fpr, name in accepted.items():
        search = "0x" + fpr
        got = meshkp_server.lookup(op="get", search=search)
        assert got.status == 200, (name, got.text)
        assert len(dearmor(got.body)) == 1
        index = meshkp_server.lookup(op="index", options="mr", search=search)
        assert index.status == 200, (name, index.text)
        lines = index.text.splitlines()
        assert lines[0] == "info:1:1" and lines[1].startswith("pub:"), (name, index.text)
        vindex = meshkp_server.lookup(op="vindex", search=search)
        assert vindex.status == 200, (name, vindex.text)
    meshkp_server.assert_no_bugs()
