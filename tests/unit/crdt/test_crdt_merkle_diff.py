"""Merkle diff: exactly the symmetric difference, within a pinned cost; bad peers are refused."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.errors import DiffProtocolError
from crdt.merkle import MemoryMerkleStorage, MerkleConfig, MerkleTree
from crdt.merkle_diff import DiffConfig, DiffInitiator, DiffResponder, diff_trees, should_list
from crdt.merkle_wire import Answer, EntriesItem, NodeItem, encode_answer
from tests.unit.crdt.trees import tree_of


def expected_diff(local: dict[bytes, bytes], remote: dict[bytes, bytes]):
    local_only = {i: d for i, d in local.items() if i not in remote}
    remote_only = {i: d for i, d in remote.items() if i not in local}
    differing = {i: (d, remote[i]) for i, d in local.items() if i in remote and remote[i] != d}
    return local_only, remote_only, differing


def assert_exact(local: dict[bytes, bytes], remote: dict[bytes, bytes], result) -> None:
    local_only, remote_only, differing = expected_diff(local, remote)
    assert dict(result.local_only) == local_only, "ids the responder lacks"
    assert dict(result.remote_only) == remote_only, "ids the initiator lacks"
    assert dict(result.differing) == differing, "ids whose digests differ"


MAPS = st.dictionaries(
    st.integers(0, 400).map(lambda i: i.to_bytes(20, "big")),
    st.sampled_from([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32]),
    max_size=120,
)


@settings(max_examples=80, deadline=None)
@given(
    local=MAPS,
    remote=MAPS,
    fanout=st.sampled_from([2, 4, 16]),
    depth=st.integers(1, 4),
    hash_bytes=st.sampled_from([8, 16, 32]),
    inline_ids=st.sampled_from([0, 4, 50]),
    budget=st.sampled_from([4096, 1 << 20]),
)
def test_finds_exactly_the_symmetric_difference(
    local, remote, fanout, depth, hash_bytes, inline_ids, budget
) -> None:
    tree_config = MerkleConfig(fanout, depth)
    diff_config = DiffConfig(hash_bytes, inline_ids, budget)
    result, stats = diff_trees(
        tree_of(local, tree_config), tree_of(remote, tree_config), diff_config
    )
    assert_exact(local, remote, result)
    assert stats.messages == 2 * stats.round_trips
    if local == remote:
        assert stats.round_trips == 1 and result.ids() == frozenset()


@pytest.mark.parametrize("empty_side", ["initiator", "responder"])
def test_bootstrap_against_an_empty_tree_pages_through_the_budget(empty_side: str) -> None:
    rng = random.Random(7)
    full = {rng.randbytes(20): rng.randbytes(32) for _ in range(3000)}
    local, remote = ({}, full) if empty_side == "initiator" else (full, {})
    config = DiffConfig(max_message_bytes=16 * 1024)
    result, stats = diff_trees(tree_of(local), tree_of(remote), config)
    assert_exact(local, remote, result)
    if empty_side == "initiator":
        # 3000 entries of ~56 B do not fit one 16 KiB answer: the responder defers, pages.
        assert stats.round_trips > 5 and stats.bytes_received < 1.3 * 3000 * 56
    else:
        assert stats.round_trips <= 2 and stats.bytes_total < 2000, "an empty side costs no ids"


def _perturbed(base: MemoryMerkleStorage, base_ids: list[bytes], d: int, rng: random.Random):
    """Two copies of a tree that differ in `d` ids: added, changed or deleted on either side."""
    local_storage, remote_storage = base.copy(), base.copy()
    local, remote = MerkleTree(local_storage), MerkleTree(remote_storage)
    touched = rng.sample(base_ids, d)
    for index, item_id in enumerate(touched):
        kind = index % 4
        if kind == 0:
            local_storage.apply(local.update(rng.randbytes(20), rng.randbytes(32)))
        elif kind == 1:
            remote_storage.apply(remote.update(rng.randbytes(20), rng.randbytes(32)))
        elif kind == 2:
            remote_storage.apply(remote.update(item_id, rng.randbytes(32)))
        else:
            local_storage.apply(local.delete(item_id))
    return local, remote


@pytest.mark.parametrize(
    ("at_leaf", "holder", "other", "listed"),
    [
        (True, 500, 500, True),  # a bucket is always listed
        (False, 4, 900, True),  # few ids: a listing is cheaper than fanout hashes
        (False, 5, 900, False),  # more: descend
        (False, 4000, 0, True),  # the other side has none: every id differs anyway
        (False, 5000, 0, False),  # ... unless the listing overflows a chunk (5000 * 64 B)
    ],
)
def test_list_or_descend_table(at_leaf: bool, holder: int, other: int, listed: bool) -> None:
    assert should_list(at_leaf, holder, other, inline_ids=4, chunk=256 * 1024) is listed


# The cost test's constant: hashes <= C * d * depth * fanout + 1 (the root hash), C = 1.
# Each level holds at most d differing nodes and each differing node's `fanout` child hashes
# are sent once, by one side.
COST_C = 1


def test_cost_is_pinned_for_100k_ids() -> None:
    rng = random.Random(2024)
    n = 100_000
    items = {rng.randbytes(20): rng.randbytes(32) for _ in range(n)}
    base_tree = tree_of(items)
    base = base_tree.storage
    assert isinstance(base, MemoryMerkleStorage)
    config = base_tree.config
    ids = list(items)
    for d in (1, 10, 100):
        local, remote = _perturbed(base, ids, d, rng)
        result, stats = diff_trees(local, remote)
        assert len(result.ids()) == d
        assert stats.hashes <= COST_C * d * config.depth * config.fanout + 1
        assert stats.round_trips == 3, "depth 4 descends two levels per round trip"
        # Bytes: hashes are 16 B + a size each; entries ~56 B, a bucket holds ~1.5 ids.
        assert stats.bytes_total <= d * (config.depth * config.fanout * 21 + 4 * 56) + 400
    same, stats = diff_trees(base_tree, MerkleTree(base.copy()))
    assert same.ids() == frozenset() and stats.round_trips == 1 and stats.bytes_total < 400


# -- misbehaving peers -------------------------------------------------------------------------
EMPTY_SLOTS = ((bytes(16), 0),) * 4


def _started(items: dict[bytes, bytes] | None = None) -> DiffInitiator:
    items = items if items is not None else {bytes([i]) * 20: b"d" * 32 for i in range(50)}
    initiator = DiffInitiator(tree_of(items, MerkleConfig(4, 2)))
    initiator.start()
    return initiator


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"\xff\xff",
        encode_answer(Answer(same_root=True, nodes=(NodeItem((0,), EMPTY_SLOTS),))),
        encode_answer(Answer(nodes=(NodeItem((0, 1), EMPTY_SLOTS),))),  # leaf, not a node
        encode_answer(Answer(nodes=(NodeItem((0,), ((b"h" * 15, 1),) * 4),))),  # short hashes
        encode_answer(Answer(nodes=(NodeItem((0,), EMPTY_SLOTS[:3]),))),  # too few children
        encode_answer(Answer(entries=(EntriesItem((3, 3, 3), ()),))),  # below the buckets
        encode_answer(Answer(deferred_nodes=((),))),  # defers everything
        encode_answer(Answer(deferred_nodes=((1,),))),  # defers what was never asked
        encode_answer(Answer(entries=(EntriesItem((1,), ()), EntriesItem((1,), ())))),  # twice
        encode_answer(Answer(entries=(EntriesItem((0,), ((b"\x00" * 20, b"d"),)),))),  # wrong path
    ],
)
def test_initiator_refuses_bad_answers(answer: bytes) -> None:
    initiator = _started()
    with pytest.raises(DiffProtocolError):
        initiator.handle(answer)
    assert not initiator.done


def test_initiator_refuses_oversized_answers_unread() -> None:
    initiator = DiffInitiator(tree_of({b"x" * 20: b"d"}), DiffConfig(max_message_bytes=4096))
    initiator.start()
    with pytest.raises(DiffProtocolError, match="exceeds"):
        initiator.handle(b"\x00" * 8193)


def test_initiator_misuse() -> None:
    initiator = DiffInitiator(tree_of({}))
    with pytest.raises(DiffProtocolError):
        initiator.handle(encode_answer(Answer(same_root=True)))
    with pytest.raises(DiffProtocolError):
        _ = initiator.result
    initiator.start()
    with pytest.raises(DiffProtocolError):
        initiator.start()


def test_responder_refuses_bad_queries_and_stays_usable() -> None:
    responder = DiffResponder(tree_of({b"x" * 20: b"d"}))
    good = DiffInitiator(tree_of({b"y" * 20: b"d"})).start()
    other_geometry = DiffInitiator(tree_of({}, MerkleConfig(16, 3))).start()
    for bad in (b"", b"\x80", other_geometry, good.replace(b"\xa1v\x01", b"\xa1v\x02"), good[:-3]):
        with pytest.raises(DiffProtocolError):
            responder.handle(bad)
    assert responder.handle(good)  # unaffected by what came before
    assert responder.stats.round_trips == 1


def test_messages_are_deterministic() -> None:
    """Same trees, same bytes: a diff replays identically (and a retried query is safe)."""
    config = MerkleConfig(4, 2)
    items = {bytes([i]) * 20: b"d" * 32 for i in range(50)}
    query = DiffInitiator(tree_of(items, config)).start()
    assert query == DiffInitiator(tree_of(dict(reversed(items.items())), config)).start()
    responder = DiffResponder(tree_of({}, config))
    assert responder.handle(query) == responder.handle(query)
