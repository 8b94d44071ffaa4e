"""Merge is a join-semilattice, and normalisation and the signature cap commute with it.

Copies of a key are random parts of real corpus keys: a random subset of its components
and of their third-party signatures. Each copy is a key in its own right (it carries at
least one component that is validly bound in the full key), and every copy of a component
or of the primary carries the signatures whose issuer claims to be the primary (how every
implementation exports a key). So a component is valid in every copy or in none: the
precondition under which `normalise(a ∪ b) == merge(normalise(a), normalise(b))` holds
(see normalise.py). For arbitrary packet subsets (components without their binding
signature), ingest's `normalise_update(stored, upload)` is tested against normalising
stored ∪ upload.
"""

from __future__ import annotations

import hashlib
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.errors import KeyRejected
from meshkp.limits import Limits
from meshkp.openpgp.certificate import Certificate
from meshkp.openpgp.normalise import claims_self, merge, normalise, normalise_update, smallest
from meshkp.openpgp.packet import Packet, Tag
from meshkp.openpgp.pubkey import parse_public_key
from meshkp.openpgp.sigpeek import peek_signature
from tests.unit.openpgp.keyfiles import raw_key

KEYS = (
    "lp1195901.asc",  # many third-party signatures, 7 subkeys, a revoked user ID
    "alice_signed.asc",  # one third-party certification
    "badselfsig.asc",  # components without a valid self-signature, a user attribute
    "gentoo-l1.asc",  # third-party signatures on the primary, 8 self-signatures on one UID
    "test-key-revoked.asc",  # a key revocation
    "252B8B37.dupsig.asc",  # a duplicated signature
)
CAP = Limits(sigs_per_component=3)  # small enough that the cap bites on lp1195901 and gentoo
# Each example normalises real keys (~10-30 ms): half the profile's count keeps the default
# suite at a few seconds; HYPOTHESIS_PROFILE=thorough runs 1000 each.
PROPERTY = settings(max_examples=max(10, settings.default.max_examples // 2), deadline=None)

Group = tuple[Packet, tuple[Packet, ...], tuple[Packet, ...]]  # component, own sigs, others


@cache
def structure(name: str) -> tuple[Group, tuple[Group, ...], tuple[int, ...]]:
    """The primary and the components of a corpus key, each with its signatures split by
    issuer, and the indexes of the components that are validly bound in the full key."""
    packets = raw_key(name)
    primary = parse_public_key(packets[0].body)
    groups: list[list[Packet]] = [[packets[0]]]
    for packet in packets[1:]:
        if packet.tag == Tag.SIGNATURE or packet.tag == Tag.TRUST:
            groups[-1].append(packet)
        else:
            groups.append([packet])
    split = []
    for head, *sigs in groups:
        own = tuple(p for p in sigs if _claims_primary(p, primary))
        split.append((head, own, tuple(p for p in sigs if p not in own)))
    full = normalise(packets)
    stored = {c.packet.body for c in full.components()}
    bound = tuple(i for i, (head, _, _) in enumerate(split[1:]) if head.body in stored)
    assert bound, name
    return split[0], tuple(split[1:]), bound


def _claims_primary(packet: Packet, primary) -> bool:
    header = peek_signature(packet.body) if packet.tag == Tag.SIGNATURE else None
    return header is not None and claims_self(header, primary)


@st.composite
def copies(draw: st.DrawFn, name: str) -> list[Packet]:
    """A copy of key `name`: some components, each with its self-signatures and some others."""
    (primary, own_direct, other_direct), components, bound = structure(name)
    required = draw(st.sampled_from(bound))
    packets = [primary, *own_direct] + [p for p in other_direct if draw(st.booleans())]
    for index, (head, own, others) in enumerate(components):
        if index == required or draw(st.booleans()):
            packets += [head, *own] + [p for p in others if draw(st.booleans())]
    return packets


@st.composite
def packet_subsets(draw: st.DrawFn, name: str) -> list[Packet]:
    """Any subset of a key's packets in file order (components may lose self-signatures)."""
    packets = raw_key(name)
    return [packets[0]] + [p for p in packets[1:] if draw(st.booleans())]


def norm(packets: list[Packet], limits: Limits = CAP) -> Certificate | None:
    """Normalised certificate, or None (the identity of merge) for a rejected packet subset."""
    try:
        return normalise(packets, limits)
    except KeyRejected as exc:
        assert exc.reason.startswith("no valid self-signature")
        return None


def join(a: Certificate | None, b: Certificate | None, limits: Limits = CAP) -> Certificate | None:
    if a is None or b is None:
        return a if b is None else b
    return merge(a, b, limits)


def key_copies(count: int) -> st.SearchStrategy[tuple[list[Packet], ...]]:
    return st.sampled_from(KEYS).flatmap(lambda name: st.tuples(*[copies(name)] * count))


@PROPERTY
@given(key_copies(3))
def test_merge_is_commutative_associative_idempotent(abc: tuple[list[Packet], ...]) -> None:
    a, b, c = (norm(p, Limits()) for p in abc)
    for x, y in ((a, b), (b, c), (a, c)):
        if x is not None and y is not None:
            assert x.merge(y) == y.merge(x)
            assert x.merge(x) == x
    if a is not None and b is not None and c is not None:
        assert a.merge(b).merge(c) == a.merge(b.merge(c))


@PROPERTY
@given(key_copies(3))
def test_capped_merge_is_commutative_associative_idempotent(abc: tuple[list[Packet], ...]) -> None:
    a, b, c = (norm(p) for p in abc)
    assert join(a, b) == join(b, a)
    assert join(a, a) == a
    assert join(join(a, b), c) == join(a, join(b, c))


@PROPERTY
@given(key_copies(2))
def test_normalise_commutes_with_merge(ab: tuple[list[Packet], ...]) -> None:
    a, b = ab
    for limits in (Limits(), CAP):
        assert norm(a + b, limits) == join(norm(a, limits), norm(b, limits), limits)


@PROPERTY
@given(key_copies(2))
def test_normalising_a_merge_changes_nothing(ab: tuple[list[Packet], ...]) -> None:
    merged = join(norm(ab[0]), norm(ab[1]))
    if merged is not None:
        assert norm(list(merged.packets())) == merged


@PROPERTY
@given(st.sampled_from(KEYS).flatmap(lambda n: st.tuples(packet_subsets(n), packet_subsets(n))))
def test_normalise_update_equals_normalising_the_union(ab: tuple[list[Packet], ...]) -> None:
    # What ingest does with an upload `b` for a stored key: the shortcut (stored
    # self-signatures are not verified again) must equal normalising stored ∪ upload.
    a, b = ab
    stored = norm(a)
    if stored is not None:
        assert normalise_update(stored, b, CAP) == normalise(list(stored.packets()) + b, CAP)


def _encoded_hash(packet: Packet) -> bytes:
    return hashlib.sha256(packet.encode()).digest()


@PROPERTY
@given(
    st.lists(st.binary(min_size=1, max_size=12), max_size=30),
    st.lists(st.binary(min_size=1, max_size=12), max_size=30),
    st.integers(min_value=1, max_value=8),
)
def test_signature_cap_commutes_with_union(left: list[bytes], right: list[bytes], cap: int) -> None:
    a = [Packet(Tag.SIGNATURE, body) for body in left]
    b = [Packet(Tag.SIGNATURE, body) for body in right]
    whole = smallest(list(set(a) | set(b)), cap)
    assert whole == smallest(list(smallest(a, cap) | smallest(b, cap)), cap)
    assert len(whole) == min(cap, len(set(a) | set(b)))
    kept_max = max((_encoded_hash(p) for p in whole), default=b"")
    assert all(_encoded_hash(p) > kept_max for p in (set(a) | set(b)) - whole)


def test_cap_bites_when_two_copies_bring_different_third_party_signatures() -> None:
    (primary, own_direct, _), components, _ = structure("lp1195901.asc")
    head, own, others = max(components, key=lambda c: len(c[2]))
    assert len(others) >= 2 * CAP.sigs_per_component
    half = len(others) // 2
    a = [primary, *own_direct, head, *own, *others[:half]]
    b = [primary, *own_direct, head, *own, *others[half:]]
    x, y = norm(a), norm(b)
    assert x is not None and y is not None
    merged = join(x, y)
    assert merged == norm(a + b)
    kept = merged.user_ids[head.body].signatures
    assert len(kept) == len(set(own)) + CAP.sigs_per_component
    assert len(x.merge(y).user_ids[head.body].signatures) > len(kept)  # uncapped union is bigger
