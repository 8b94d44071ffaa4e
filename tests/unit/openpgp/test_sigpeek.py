"""peek_signature agrees with parse_signature on every input: the fast path drops exactly
the signatures the full parser cannot read, and reads the same type and issuer."""

from __future__ import annotations

from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from meshkp.errors import MalformedPacket
from meshkp.openpgp.packet import Tag
from meshkp.openpgp.signature import parse_signature
from meshkp.openpgp.sigpeek import peek_signature
from tests.unit.openpgp.keyfiles import all_packets

SOURCES = ("lp1195901.asc", "rfc9580-v6-sample.asc", "0ff16c87.asc", "a7400f5a_badsigs.asc",
           "test-key-uid-revoked.asc")


@cache
def corpus_signatures() -> tuple[bytes, ...]:
    found = {p.body for name in SOURCES for p in all_packets(name) if p.tag == Tag.SIGNATURE}
    return tuple(sorted(found))


def assert_agree(body: bytes) -> None:
    header = peek_signature(body)
    try:
        sig = parse_signature(body)
    except MalformedPacket:
        assert header is None, body.hex()
        return
    assert header is not None, body.hex()
    assert header.version == (3 if sig.version in (2, 3) else sig.version)
    assert (header.sig_type, header.issuer_key_id, header.issuer_fingerprint) == (
        sig.sig_type, sig.issuer_key_id, sig.issuer_fingerprint
    )


def test_agree_on_every_corpus_signature_and_its_truncations() -> None:
    versions = set()
    for body in corpus_signatures():
        versions.add(body[0])
        for cut in range(len(body) if len(body) < 64 else 64):
            assert_agree(body[:cut])
        assert_agree(body)
    assert {3, 4, 6} <= versions


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(corpus_signatures())))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(("flip", "cut", "insert", "delete")))
        position = draw(st.integers(0, max(0, len(body) - 1)))
        if action == "flip" and body:
            body[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del body[position:]
        elif action == "insert":
            body[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif body:
            del body[position]
    return bytes(body)


@given(mutated())
def test_agree_on_mutated_signatures(body: bytes) -> None:
    assert_agree(body)


@given(st.binary(max_size=40))
def test_agree_on_random_bytes(body: bytes) -> None:
    assert_agree(body)
