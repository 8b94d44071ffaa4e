"""index_terms orders user IDs (which parses every self-signature) only when the keyword cap
bites; the terms must be exactly those of the ordered algorithm, under and over the cap."""

from __future__ import annotations

import pytest

from meshkp.keys.terms import index_terms
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.index import key_view
from meshkp.openpgp.keytext import parse_keytext
from meshkp.openpgp.keywords import tokens
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.store.protocol import IndexKind, IndexTerm
from tests.unit.openpgp.keyfiles import FIXTURES, fixture

NAMES = sorted(p.name for p in FIXTURES.glob("*.asc"))


def ordered_terms(cert: Certificate, limits: Limits) -> frozenset[IndexTerm]:
    """The reference: keywords of every user ID in key_view order (primary first), capped."""
    terms: set[IndexTerm] = set()
    for body in (cert.primary.packet.body, *(c.packet.body for c in cert.subkeys.values())):
        key = parse_public_key(body)
        terms |= {(IndexKind.FINGERPRINT, key.fingerprint), (IndexKind.KEY_ID64, key.key_id),
                  (IndexKind.KEY_ID32, key.short_id)}
    seen: list[str] = []
    for info in key_view(cert).user_ids:
        if info.email:
            terms.add((IndexKind.EMAIL, info.email.encode()))
        for word in tokens(info.text, limits.keyword_bytes, info.email):
            if word not in seen and len(seen) < limits.keywords_per_key:
                seen.append(word)
    return frozenset(terms | {(IndexKind.KEYWORD, w.encode()) for w in seen})


@pytest.mark.parametrize("cap", [3, 12, 256])
def test_terms_equal_the_ordered_algorithm(cap: int) -> None:
    limits = Limits(keywords_per_key=cap)
    capped = 0
    for name in NAMES:
        for cert in (c for c in parse_keytext(fixture(name)) if isinstance(c, Certificate)):
            assert index_terms(cert, limits) == ordered_terms(cert, limits), name
            capped += len({w for u in cert.user_ids for w in tokens(u.decode("latin-1"), 64)}) > cap
    assert cap == 256 or capped > 0  # the ordered (capped) path was exercised
