"""The Store contract, run on MemoryStore and on a real LevelDB: both must behave the same."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.errors import StoreClosed, StoreUsageError
from meshkp.store import layout
from meshkp.store.leveldb import SCAN_CHUNK_ROWS, LevelDBStore
from meshkp.store.memory import MemoryStore
from meshkp.store.protocol import IndexKind, RecordWrite, Store
from tests.unit.store.helpers import fpr, put

E, W, F = IndexKind.EMAIL, IndexKind.KEYWORD, IndexKind.FINGERPRINT


def test_empty_store_has_nothing(store: Store) -> None:
    assert store.get(fpr(1)) is None
    assert store.lookup(E, b"alice@example.org", 10) == []
    assert store.counter("keys") == 0
    assert store.get_extra(b"merkle/root") is None
    assert list(store.iter_records()) == []
    assert list(store.iter_extra(b"")) == []


def test_write_makes_record_terms_counters_and_extras_visible(store: Store) -> None:
    key = fpr(1)
    store.write([put(key, b"v1", new=[(E, b"alice@example.org"), (W, b"alice")],
                     counters={"keys": 1}, extra=[(b"merkle/leaf/07", b"h1")])])
    assert store.get(key) == b"v1"
    assert store.lookup(E, b"alice@example.org", 10) == [key]
    assert store.lookup(W, b"alice", 10) == [key]
    assert store.counter("keys") == 1
    assert store.get_extra(b"merkle/leaf/07") == b"h1"
    assert list(store.iter_records()) == [(key, b"v1")]


def test_index_move_removes_old_terms_and_adds_new(store: Store) -> None:
    key = fpr(1)
    store.write([put(key, b"v1", new=[(W, b"alice"), (W, b"bob")])])
    store.write([put(key, b"v2", old=[(W, b"alice"), (W, b"bob")], new=[(W, b"bob"), (W, b"carol")])])
    assert store.lookup(W, b"alice", 10) == []
    assert store.lookup(W, b"bob", 10) == [key]
    assert store.lookup(W, b"carol", 10) == [key]


def test_delete_removes_record_and_its_terms(store: Store) -> None:
    key, other = fpr(1), fpr(2)
    store.write([put(key, new=[(W, b"shared")], counters={"keys": 1}),
                 put(other, new=[(W, b"shared")], counters={"keys": 1})])
    store.write([put(key, None, old=[(W, b"shared")], counters={"keys": -1})])
    assert store.get(key) is None
    assert store.lookup(W, b"shared", 10) == [other]
    assert store.counter("keys") == 1
    assert list(store.iter_records()) == [(other, b"record")]


def test_lookup_returns_fingerprint_order_up_to_limit(store: Store) -> None:
    keys = [fpr(n) for n in range(30)]
    store.write([put(k, new=[(W, b"common")]) for k in keys])
    assert store.lookup(W, b"common", 10) == sorted(keys)[:10]
    assert store.lookup(W, b"common", 1000) == sorted(keys)
    assert store.lookup(W, b"common", 0) == []


def test_a_term_never_matches_another_term_it_is_a_prefix_of(store: Store) -> None:
    a, ab, abc = fpr(1), fpr(2), fpr(3)
    store.write([put(a, new=[(W, b"a")]), put(ab, new=[(W, b"ab")]), put(abc, new=[(W, b"abc")])])
    assert store.lookup(W, b"a", 10) == [a]
    assert store.lookup(W, b"ab", 10) == [ab]
    assert store.lookup(W, b"abc", 10) == [abc]
    assert store.lookup(W, b"abcd", 10) == []


def test_kinds_are_separate_indexes(store: Store) -> None:
    key = fpr(1)
    store.write([put(key, new=[(E, b"alice@example.org")])])
    assert store.lookup(W, b"alice@example.org", 10) == []
    assert store.lookup("e", b"alice@example.org", 10) == [key]  # type: ignore[arg-type]


def test_mixed_fingerprint_lengths_sort_bytewise(store: Store) -> None:
    keys = [fpr(1, 16), fpr(2, 20), fpr(3, 32), b"\x00" * 20, b"\xff" * 32]
    store.write([put(k, k, new=[(F, b"t")]) for k in keys])
    assert [k for k, _ in store.iter_records()] == sorted(keys)
    assert store.lookup(F, b"t", 10) == sorted(keys)


def test_counters_add_deltas_across_and_within_batches(store: Store) -> None:
    store.write([put(fpr(1), counters={"keys": 1}), put(fpr(2), counters={"keys": 1, "sigs": 5})])
    store.write([put(fpr(3), counters={"keys": 1, "sigs": -2})])
    assert store.counter("keys") == 3
    assert store.counter("sigs") == 3


def test_same_fingerprint_twice_in_one_batch_applies_in_order(store: Store) -> None:
    key = fpr(1)
    store.write([
        put(key, b"v1", new=[(W, b"a")], counters={"keys": 1}),
        put(key, b"v2", old=[(W, b"a")], new=[(W, b"b")]),
    ])
    assert store.get(key) == b"v2"
    assert store.lookup(W, b"a", 10) == []
    assert store.lookup(W, b"b", 10) == [key]
    assert store.counter("keys") == 1


BAD_ELEMENTS: dict[str, RecordWrite] = {
    "hex fingerprint": put(b"ab" * 20),
    "empty fingerprint": put(b""),
    "str record": put(fpr(9), "text"),  # type: ignore[arg-type]
    "term too long": put(fpr(9), new=[(W, b"x" * (layout.MAX_TERM_BYTES + 1))]),
    "empty term": put(fpr(9), new=[(W, b"")]),
    "unknown kind": put(fpr(9), new=[("z", b"t")]),  # type: ignore[list-item]
    "str term": put(fpr(9), new=[(W, "t")]),  # type: ignore[list-item]
    "terms on a deleted record": put(fpr(9), None, new=[(W, b"t")]),
    "bool counter delta": put(fpr(9), counters={"keys": True}),
    "empty counter name": put(fpr(9), counters={"": 1}),
    "empty extra key": put(fpr(9), extra=[(b"", b"v")]),
    "str extra value": put(fpr(9), extra=[(b"k", "v")]),  # type: ignore[list-item]
    "counter overflow": put(fpr(9), counters={"keys": layout.COUNTER_MAX}),
}


@pytest.mark.parametrize("bad", BAD_ELEMENTS.values(), ids=BAD_ELEMENTS.keys())
def test_a_write_with_one_bad_element_leaves_nothing_behind(store: Store, bad: RecordWrite) -> None:
    store.write([put(fpr(0), b"before", new=[(W, b"kept")], counters={"keys": 1})])
    good = put(fpr(1), b"new", old=[(W, b"kept")], new=[(W, b"fresh")], counters={"keys": 1},
               extra=[(b"merkle/x", b"1")])
    with pytest.raises(StoreUsageError, match="nothing was written"):
        store.write([good, bad])
    assert store.get(fpr(1)) is None
    assert store.lookup(W, b"fresh", 10) == []
    assert store.counter("keys") == 1
    assert store.get_extra(b"merkle/x") is None
    assert list(store.iter_records()) == [(fpr(0), b"before")]


@pytest.mark.parametrize("writes", [None, "abc", [b"not a write"]])
def test_write_refuses_what_is_not_a_sequence_of_writes(store: Store, writes: object) -> None:
    with pytest.raises(StoreUsageError):
        store.write(writes)  # type: ignore[arg-type]


def test_bad_read_arguments_are_usage_errors(store: Store) -> None:
    with pytest.raises(StoreUsageError):
        store.get("ab" * 20)  # type: ignore[arg-type]
    with pytest.raises(StoreUsageError):
        store.lookup(W, b"t", -1)
    with pytest.raises(StoreUsageError):
        store.lookup("z", b"t", 1)  # type: ignore[arg-type]
    assert store.lookup(W, b"x" * (layout.MAX_TERM_BYTES + 1), 5) == []


def test_iter_records_starts_inclusive_and_skips_other_namespaces(store: Store) -> None:
    keys = sorted(fpr(n) for n in range(10))
    store.write([put(k, k, new=[(W, b"t")], counters={"keys": 1}, extra=[(k, b"x")]) for k in keys])
    assert [k for k, _ in store.iter_records(keys[4])] == keys[4:]
    assert [k for k, _ in store.iter_records(keys[4] + b"\x00")] == keys[5:]
    assert all(value == key for key, value in store.iter_records())


def test_iteration_is_a_snapshot_from_the_first_item(store: Store) -> None:
    keys = sorted(fpr(n) for n in range(SCAN_CHUNK_ROWS * 2 + 10))  # crosses LevelDB chunks
    store.write([put(k, b"old") for k in keys])
    rows = store.iter_records()
    first = next(rows)
    store.write([put(k, b"new") for k in keys] + [put(b"\xff" * 20, b"late")])
    rest = list(rows)
    assert [first, *rest] == [(k, b"old") for k in keys]
    assert dict(store.iter_records())[b"\xff" * 20] == b"late"


def test_extras_scan_is_exact_to_the_prefix_and_honours_start(store: Store) -> None:
    extras = [(b"m/1", b"a"), (b"m/2", b"b"), (b"m/3", b"c"), (b"m0", b"no"), (b"m", b"no"),
              (b"r" + fpr(1), b"looks like a record key")]
    store.write([put(fpr(1), extra=extras)])
    assert list(store.iter_extra(b"m/")) == extras[:3]
    assert list(store.iter_extra(b"m/", start=b"m/2")) == extras[1:3]
    assert list(store.iter_extra(b"m/", start=b"a")) == extras[:3]
    assert [k for k, _ in store.iter_records()] == [fpr(1)]
    store.write([put(fpr(1), extra=[(b"m/2", None)])])
    assert store.get_extra(b"m/2") is None
    assert [k for k, _ in store.iter_extra(b"m/")] == [b"m/1", b"m/3"]


def test_extra_keys_of_0xff_bytes_scan_to_the_end(store: Store) -> None:
    store.write([put(fpr(1), extra=[(b"\xff", b"1"), (b"\xff\xff", b"2")])])
    assert list(store.iter_extra(b"\xff")) == [(b"\xff", b"1"), (b"\xff\xff", b"2")]


def test_close_is_idempotent_and_later_calls_raise_store_closed(store: Store) -> None:
    store.write([put(fpr(1))])
    store.close()
    store.close()
    calls: list[Callable[[], object]] = [
        lambda: store.get(fpr(1)),
        lambda: store.lookup(W, b"t", 1),
        lambda: store.write([put(fpr(2))]),
        lambda: list(store.iter_records()),
        lambda: store.counter("keys"),
        lambda: store.get_extra(b"k"),
        lambda: list(store.iter_extra(b"")),
    ]
    for call in calls:
        with pytest.raises(StoreClosed):
            call()


def test_iterating_across_close_raises_store_closed(store: Store) -> None:
    store.write([put(fpr(n)) for n in range(SCAN_CHUNK_ROWS * 2)])
    rows = store.iter_records()
    next(rows)
    store.close()
    with pytest.raises(StoreClosed):
        list(rows)


# -- the two stores agree on random histories -----------------------------------------------

_fingerprints = st.sampled_from([fpr(n, length) for n in range(6) for length in (16, 20)])
_terms = st.frozensets(
    st.tuples(st.sampled_from([E, W, F]), st.sampled_from([b"a", b"ab", b"b", b"\x00", b"\xff"])),
    max_size=4,
)
_writes = st.builds(
    RecordWrite,
    fingerprint=_fingerprints,
    record=st.one_of(st.none(), st.binary(max_size=8)),
    old_terms=_terms,
    new_terms=_terms,
    counters=st.dictionaries(st.sampled_from(["keys", "sigs"]), st.integers(-3, 3), max_size=2),
    extra=st.lists(st.tuples(st.sampled_from([b"m/1", b"m/2", b"n"]),
                             st.one_of(st.none(), st.binary(max_size=4))), max_size=2),
)


def _observe(store: Store) -> tuple[object, ...]:
    lookups = {(k, t): store.lookup(k, t, 3) for k in (E, W, F)
               for t in (b"a", b"ab", b"b", b"\x00", b"\xff")}
    return (list(store.iter_records()), lookups, store.counter("keys"), store.counter("sigs"),
            list(store.iter_extra(b"")), list(store.iter_extra(b"m/", b"m/2")))


@settings(max_examples=30)
@given(st.lists(st.lists(_writes, max_size=4), max_size=6))
def test_memory_and_leveldb_agree_on_any_history(batches: list[list[RecordWrite]]) -> None:
    memory = MemoryStore()
    with tempfile.TemporaryDirectory() as tmp:
        leveldb = LevelDBStore(Path(tmp) / "db")
        try:
            for batch in batches:
                outcomes = []
                for candidate in (memory, leveldb):
                    try:
                        candidate.write(batch, sync=False)
                        outcomes.append("ok")
                    except StoreUsageError as exc:
                        outcomes.append(str(exc))
                assert outcomes[0] == outcomes[1]
                assert _observe(memory) == _observe(leveldb)
        finally:
            leveldb.close()
