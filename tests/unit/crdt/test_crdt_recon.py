"""The compact diff (crdt/recon.py): every difference found both ways, collisions of short
hashes, a bad peer's bytes, and the far-behind estimate."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Iterator
from functools import cache
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import recon, recon_check, recon_config, recon_listings, recon_view
from crdt.diff_session import run_in_process
from crdt.errors import CrdtConfigError, DiffProtocolError
from crdt.merkle import MerkleConfig, MerkleTree
from crdt.merkle_diff import DiffResult, diff_trees
from crdt.recon import ReconConfig, ReconInitiator, ReconResponder, recon_trees
from crdt.recon_body import Reader, encode_path
from crdt.recon_view import QuadView, vpath_of
from crdt.recon_wire import V3_ROOT_BYTES, is_recon_query
from tests.unit.crdt.trees import tree_of as tree_in_memory

SMALL = MerkleConfig(fanout=16, depth=2)  # 256 buckets: sub-bucket levels are reached
FIXED = ReconConfig(new_salt=lambda: b"fixed.8b")  # the same salt every session


def tree_of(items: dict[bytes, bytes], config: MerkleConfig = SMALL) -> MerkleTree:
    return tree_in_memory(items, config)


def ident(i: int) -> bytes:
    return hashlib.sha1(b"id%d" % i).digest()


def digest(i: int, version: int = 0) -> bytes:
    return hashlib.sha256(b"d%d/%d" % (i, version)).digest()


def expected(local: dict[bytes, bytes], remote: dict[bytes, bytes]) -> tuple[set[bytes], ...]:
    return (set(local) - set(remote), set(remote) - set(local),
            {i for i in set(local) & set(remote) if local[i] != remote[i]})


def found(result: DiffResult) -> tuple[set[bytes], ...]:
    return set(result.local_only), set(result.remote_only), set(result.differing)


def two_maps(n: int, d: int, seed: int) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """Maps of ~n ids differing in d: ids each side lacks, and digests changed."""
    rng = random.Random(seed)
    base = {ident(i): digest(i) for i in range(n)}
    local, remote = dict(base), dict(base)
    for k, i in enumerate(rng.sample(range(n), d)):
        kind = k % 3
        if kind == 0:
            del remote[ident(i)]
        elif kind == 1:
            del local[ident(i)]
        else:
            remote[ident(i)] = digest(i, 1)
    return local, remote


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("n,d", [(0, 0), (1, 1), (50, 0), (300, 1), (2000, 10), (2000, 300)])
def test_every_difference_is_found_in_both_directions(n: int, d: int, version: int) -> None:
    local, remote = two_maps(n, d, seed=n + d)
    # v2 has no closing check: a random salt misses a difference in ~1 run of 300 at d = 300
    # (found by the next round); v3's check sees that and descends again.
    config = ReconConfig(new_salt=lambda: b"fixed.8b") if version == 2 else None
    result, stats = recon_trees(tree_of(local), tree_of(remote), config, version)
    assert found(result) == expected(local, remote)
    # ... and the same as the v1 diff finds.
    v1, _ = diff_trees(tree_of(local), tree_of(remote))
    assert found(result) == found(v1)
    if local == remote:
        assert stats.round_trips == 1


def test_one_side_empty() -> None:
    items = {ident(i): digest(i) for i in range(500)}
    pulled, _ = recon_trees(tree_of({}), tree_of(items))
    assert set(pulled.remote_only) == set(items) and not pulled.local_only
    pushed, _ = recon_trees(tree_of(items), tree_of({}))
    assert set(pushed.local_only) == set(items) and not pushed.remote_only


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 400), max_size=120), st.sets(st.integers(0, 400), max_size=120),
       st.sets(st.integers(0, 400), max_size=30))
def test_any_two_maps(only_local: set[int], only_remote: set[int], changed: set[int]) -> None:
    local = {ident(i): digest(i) for i in only_local | changed}
    remote = {ident(i): digest(i) for i in only_remote | changed}
    for i in sorted(changed)[::2]:
        remote[ident(i)] = digest(i, 1)
    initiator = ReconInitiator(tree_of(local))
    result, _ = run_in_process(initiator, ReconResponder(tree_of(remote)))
    assert found(result) == expected(local, remote)
    assert initiator.verified is True  # the closing check held (after one more descent at most)


def test_it_costs_a_fraction_of_the_v1_descent() -> None:
    """Bytes, not time: the point of the protocol (bench/merkle_diff.py has the figures)."""
    local, remote = two_maps(8000, 30, seed=3)
    a, b = tree_of(local, MerkleConfig()), tree_of(remote, MerkleConfig())
    _, v2 = recon_trees(a, b)
    _, v1 = diff_trees(a, b)
    assert v2.bytes_total * 4 < v1.bytes_total


def test_messages_above_the_bound_are_refused_unread() -> None:
    local, remote = two_maps(6000, 1500, seed=4)
    small = dataclasses.replace(FIXED, max_message_bytes=4096)
    result, stats = recon_trees(tree_of(local), tree_of(remote), small)
    assert found(result) == expected(local, remote)  # deferred, not lost
    _, unbounded = recon_trees(tree_of(local), tree_of(remote), FIXED)
    assert stats.round_trips > unbounded.round_trips
    with pytest.raises(DiffProtocolError, match="exceeds"):
        ReconResponder(tree_of(remote), small).handle(b"\x95" + bytes(3 * 4096))


# -- collisions of short hashes ------------------------------------------------------------

Salted = Callable[[bytes, bytes, int], bytes]
REAL_SALTED = recon_view.salted


def colliding(width: int) -> Salted:
    """A `salted` whose short outputs (node hashes, listed digests and id hashes, not the 8
    bytes of a root or check) hold only `width` bytes of entropy (the rest zero)."""
    real = REAL_SALTED

    def salted(full: bytes, salt: bytes, size: int) -> bytes:
        if size >= V3_ROOT_BYTES:
            return real(full, salt, size)
        return real(full, salt, width) + bytes(size - width) if width else bytes(size)

    return salted


def patch_salted(monkeypatch: pytest.MonkeyPatch, salted: Salted) -> None:
    """Every module of the compact diff that salts hashes, both sides."""
    modules = [m for m in (recon, recon_check, recon_config, recon_listings) if hasattr(m, "salted")]
    assert len(modules) >= 3
    for module in modules:
        monkeypatch.setattr(module, "salted", salted)


def test_a_collision_at_every_short_hash_is_seen_and_asked_again_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every short hash the same: each node known to differ shows no differing child, and is
    compared again with whole hashes: one difference is still found, in the same round."""
    patch_salted(monkeypatch, colliding(0))
    items = {ident(i): digest(i) for i in range(3000)}
    changed = dict(items)
    changed[ident(7)] = digest(7, 1)
    config = ReconConfig(digest_bytes=32)  # listed digests whole: only node hashes collide
    initiator = ReconInitiator(tree_of(items), config)
    responder = ReconResponder(tree_of(changed), config)
    message: bytes | None = initiator.start()
    while message is not None:
        message = initiator.handle(responder.handle(message))
    assert set(initiator.result.differing) == {ident(7)}
    assert initiator.collisions >= 1


@pytest.mark.parametrize("version", [2, 3])
def test_differences_a_collision_hid_are_found_by_later_rounds(
        monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """With one byte of entropy per short hash and digest, rounds miss differences now and
    then (v2: any; v3: only digests in listed subtrees, which the closing check cuts out);
    the salt is new each round, so syncing round after round loses none."""
    patch_salted(monkeypatch, colliding(1))
    local, remote = two_maps(3000, 400, seed=9)
    salts = random.Random(9)  # seeded: which rounds miss is then the same every run
    config = ReconConfig(hash_bytes=2, short_hash_bytes=2, digest_bytes=2,
                         new_salt=lambda: salts.randbytes(8))
    missed_once = False
    for _ in range(30):
        result, _ = recon_trees(tree_of(local), tree_of(remote), config, version)
        truth = expected(local, remote)
        missed_once |= found(result) != truth
        assert all(f <= t for f, t in zip(found(result), truth, strict=True))  # never invents
        if not any(truth):
            break
        for item_id in result.remote_only:
            local[item_id] = remote[item_id]
        for item_id in result.differing:
            local[item_id] = remote[item_id]
        for item_id in result.local_only:
            remote[item_id] = local[item_id]
    assert local == remote
    if version == 2:
        assert missed_once  # the test does exercise misses


def _hiding_one_of_two_differences(first_salt_only: bool
                                   ) -> tuple[dict[bytes, bytes], dict[bytes, bytes], Salted]:
    """Two changed ids X and Y whose paths part at digit 3, and a `salted` under which every
    short hash of X's subtrees below that is the same on both sides: at the node where they
    part, Y's child differs and X's does not, so the descent cannot tell X was hidden."""
    local = {ident(i): digest(i) for i in range(2000)}
    by_prefix: dict[tuple[int, ...], bytes] = {}
    pair = None
    for item_id in local:
        prefix = vpath_of(item_id, 4)
        twin = by_prefix.get(prefix[:3])
        if twin is not None and vpath_of(twin, 4)[3] != prefix[3]:
            pair = (item_id, twin)
            break
        by_prefix.setdefault(prefix[:3], item_id)
    assert pair is not None
    x, y = pair
    remote = dict(local)
    remote[x], remote[y] = digest(1, 7), digest(2, 7)
    hidden: set[bytes] = set()
    for tree in (tree_of(local), tree_of(remote)):
        view = QuadView(tree)
        path = vpath_of(x, view.max_v)
        hidden.update(view.slot(path[:level]).hash for level in range(4, view.max_v + 1))

    def salted(full: bytes, salt: bytes, size: int) -> bytes:
        if size < V3_ROOT_BYTES and full in hidden and (salt == SALTS[0] or not first_salt_only):
            return bytes(size)
        return REAL_SALTED(full, salt, size)

    return local, remote, salted


SALTS = (b"first...", b"second..", b"third...")


def test_the_closing_check_sees_a_hidden_difference_and_a_second_descent_finds_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    local, remote, salted = _hiding_one_of_two_differences(first_salt_only=True)
    patch_salted(monkeypatch, salted)
    config = ReconConfig(new_salt=iter(SALTS).__next__)
    initiator = ReconInitiator(tree_of(local), config)
    result, _ = run_in_process(initiator, ReconResponder(tree_of(remote), config))
    assert found(result) == expected(local, remote)
    assert initiator.verified is True and initiator.geometry.salt == SALTS[1]
    # v2 has no check: the same round misses X.
    v2 = ReconInitiator(tree_of(local), ReconConfig(new_salt=iter(SALTS).__next__), version=2)
    missed, _ = run_in_process(v2, ReconResponder(tree_of(remote)))
    assert len(missed.differing) == 1 and v2.verified is None


def test_a_check_failing_twice_says_so_and_invents_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    local, remote, salted = _hiding_one_of_two_differences(first_salt_only=False)
    patch_salted(monkeypatch, salted)
    initiator = ReconInitiator(tree_of(local), ReconConfig(new_salt=iter(SALTS).__next__))
    result, _ = run_in_process(initiator, ReconResponder(tree_of(remote)))
    assert initiator.verified is False
    assert len(result.differing) == 1 and set(result.differing) < expected(local, remote)[2]


def test_salts_differ_between_sessions() -> None:
    tree = tree_of({ident(1): digest(1)})
    assert ReconInitiator(tree).geometry.salt != ReconInitiator(tree).geometry.salt


# -- a bad peer ----------------------------------------------------------------------------

@cache
def _maps() -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    return two_maps(600, 30, seed=5)


@cache
def _trees() -> tuple[MerkleTree, MerkleTree]:
    local, remote = _maps()
    return tree_of(local), tree_of(remote)  # only read


def _session() -> tuple[ReconInitiator, ReconResponder, bytes]:
    local, remote = _trees()
    initiator = ReconInitiator(local)
    return initiator, ReconResponder(remote), initiator.start()


@cache
def _transcript() -> tuple[tuple[bytes, bytes], ...]:
    """Every (query, answer) of one v3 session: node items, offers, indexed wants, a check."""
    local, remote = _trees()
    initiator = ReconInitiator(local, FIXED)
    responder = ReconResponder(remote)
    pairs = []
    query: bytes | None = initiator.start()
    while query is not None:
        answer = responder.handle(query)
        pairs.append((query, answer))
        query = initiator.handle(answer)
    return tuple(pairs)


def _mutated(data: st.DataObject, blob: bytes) -> list[bytes]:
    position = data.draw(st.integers(0, len(blob) - 1))
    mutated = bytearray(blob)
    mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    return [bytes(mutated), bytes(mutated[:cut])]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_mutated_query_is_answered_or_refused_never_crashes(data: st.DataObject) -> None:
    transcript = _transcript()
    query, _ = transcript[data.draw(st.integers(0, len(transcript) - 1))]
    responder = ReconResponder(_trees()[1])
    for blob in _mutated(data, query):
        try:
            responder.handle(blob)
        except DiffProtocolError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_mutated_answer_is_used_or_refused_never_crashes(data: st.DataObject) -> None:
    transcript = _transcript()
    at = data.draw(st.integers(0, len(transcript) - 1))
    initiator = ReconInitiator(_trees()[0], FIXED)
    initiator.start()
    for _, answer in transcript[:at]:
        initiator.handle(answer)
    blob = _mutated(data, transcript[at][1])[data.draw(st.integers(0, 1))]
    try:
        initiator.handle(blob)
    except DiffProtocolError:
        pass


def test_the_transcript_uses_every_kind_of_v3_item() -> None:
    """What the two tests above mutate: offers, indexed wants and a closing check among them."""
    queries = b"".join(q for q, _ in _transcript())
    assert len(_transcript()) >= 4 and queries.count(b"\xc1\x03") == len(_transcript())
    local, remote = _trees()
    initiator = ReconInitiator(local, FIXED)
    result, _ = run_in_process(initiator, ReconResponder(remote))
    assert initiator.verified is True and found(result) == expected(*_maps())


def test_an_answer_listing_an_id_under_the_wrong_path_is_refused() -> None:
    local = {ident(i): digest(i) for i in range(3)}
    remote = dict(local)
    remote[ident(3)] = digest(3)
    initiator = ReconInitiator(tree_of(local))
    responder = ReconResponder(tree_of(remote))
    answer = responder.handle(initiator.start())
    stranger = next(i for i in (ident(k) for k in count(100))
                    if vpath_of(i, 1) != vpath_of(ident(3), 1))
    forged = answer.replace(ident(3), stranger)
    assert forged != answer
    with pytest.raises(DiffProtocolError, match="does not belong"):
        initiator.handle(forged)


def test_an_answer_that_makes_no_progress_is_refused() -> None:
    initiator, _, _ = _session()
    from crdt.recon_wire import ReconAnswer, encode_answer
    with pytest.raises(DiffProtocolError, match="no progress"):
        initiator.handle(encode_answer(ReconAnswer(False, 0, 0, b"")))


def test_a_v1_query_is_not_taken_for_a_compact_one() -> None:
    tree = tree_of({ident(1): digest(1)})
    from crdt.merkle_diff import DiffInitiator
    assert not is_recon_query(DiffInitiator(tree).start())
    assert is_recon_query(ReconInitiator(tree).start())


def test_a_fanout_that_is_not_a_power_of_four_is_refused() -> None:
    with pytest.raises(CrdtConfigError):
        ReconInitiator(tree_of({}, MerkleConfig(fanout=8, depth=2)))


@pytest.mark.parametrize("vpath", [(), (3,), (1, 2, 3), (0,) * 9, (3, 2, 1, 0, 1)])
def test_paths_round_trip(vpath: tuple[int, ...]) -> None:
    for flags in (0, 0x40, 0x80):
        read = Reader(encode_path(vpath, flags), "test").flagged_path(30)
        assert read == (vpath, flags)


def test_the_view_covers_every_entry_once() -> None:
    items = {ident(i): digest(i) for i in range(700)}
    view = QuadView(tree_of(items))
    leaves: Iterator[tuple[int, ...]] = iter([()])
    for _ in range(view.max_v - 3):  # down to sub-bucket levels
        leaves = ((*p, c) for p in leaves for c in range(4))
    seen = [i for leaf in leaves for i, _ in view.entries(leaf)]
    assert sorted(seen) == sorted(items)
    assert view.slot(()).size == 700


# -- far behind ----------------------------------------------------------------------------

def test_the_estimate_follows_the_difference_and_gives_up_above_the_bound() -> None:
    for d, give_up in ((20, False), (1500, True)):
        local, remote = two_maps(6000, d, seed=d)
        initiator = ReconInitiator(tree_of(local, MerkleConfig()), give_up_above=800)
        responder = ReconResponder(tree_of(remote, MerkleConfig()))
        message: bytes | None = initiator.start()
        while message is not None:
            message = initiator.handle(responder.handle(message))
        assert initiator.gave_up is give_up
        if give_up:
            assert initiator.estimate() > 800 and initiator.stats.round_trips <= 4
        else:
            assert d / 2 <= initiator.estimate() <= 2 * d
            assert found(initiator.result) == expected(local, remote)


def test_a_query_of_too_many_items_is_refused() -> None:
    from crdt.recon_body import pack_grouped, pack_hashes
    from crdt.recon_wire import ReconQuery, encode_query
    tree = tree_of({ident(1): digest(1)})
    geometry = ReconInitiator(tree).geometry
    items = [(0, (), pack_hashes((None,) * 4))] * (recon_config.MAX_QUERY_ITEMS + 1)
    query = encode_query(ReconQuery(geometry, None, pack_grouped(items), b""))
    with pytest.raises(DiffProtocolError, match="more than"):
        ReconResponder(tree).handle(query)


def test_a_one_byte_wire_hash_is_never_zero_which_stands_for_an_empty_child() -> None:
    from crdt.recon_body import Reader as BodyReader
    from crdt.recon_body import pack_unmasked
    from crdt.recon_config import wire_hash
    view = QuadView(tree_of({ident(i): digest(i) for i in range(50)}))
    salt = next(s for s in (b"salt%04d" % k for k in range(5000))
                if REAL_SALTED(view.slot((0,)).hash, s, 1) == b"\x00")
    assert wire_hash(view, (0,), salt, 1) == b"\x01"
    hashes = (b"\x07", None, b"\x01", None)
    assert BodyReader(pack_unmasked(hashes), "test").unmasked(1) == hashes


def test_a_check_cutting_out_too_many_paths_is_refused() -> None:
    from crdt.recon_body import pack_grouped
    from crdt.recon_check import MAX_CHECK_PATHS
    from crdt.recon_wire import ReconQuery, encode_query
    tree = tree_of({ident(i): digest(i) for i in range(20)})
    geometry = ReconInitiator(tree).geometry
    cut = pack_grouped([(0, (1, 2, 3), b"")] * (MAX_CHECK_PATHS + 1))
    with pytest.raises(DiffProtocolError, match="more than"):
        ReconResponder(tree).handle(encode_query(ReconQuery(geometry, None, b"", b"", cut)))
    fine = pack_grouped([(0, (1, 2, 3), b"")] * 3)
    answer = ReconResponder(tree).handle(encode_query(ReconQuery(geometry, None, b"", b"", fine)))
    assert len(answer) == 2 + 1 + 8 + 2  # prefix, flags, the check hash, two zero counts
