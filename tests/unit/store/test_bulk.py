"""Store.write_bulk and Store.iter_index (the snapshot bootstrap's store helper), on both stores."""

from __future__ import annotations

import pytest

from meshkp.errors import StoreUsageError
from meshkp.store import layout
from meshkp.store.protocol import BulkWrite, IndexKind, Store
from tests.unit.store.helpers import fpr, put

E, W, F = IndexKind.EMAIL, IndexKind.KEYWORD, IndexKind.FINGERPRINT


def test_iter_index_lists_every_entry_in_key_order_from_start(store: Store) -> None:
    store.write([put(fpr(2), new=[(W, b"bob"), (E, b"b@x.org")]), put(fpr(1), new=[(W, b"bob")])])
    entries = list(store.iter_index())
    assert entries == sorted(entries)
    bobs = sorted([fpr(1), fpr(2)])
    assert [layout.split_index_entry(e) for e in entries] == [
        ("e", b"b@x.org", fpr(2)), ("w", b"bob", bobs[0]), ("w", b"bob", bobs[1])]
    assert list(store.iter_index(entries[1])) == entries[1:]


def test_bulk_rows_copied_from_one_store_serve_lookups_in_another(store: Store) -> None:
    from meshkp.store.memory import MemoryStore

    source = MemoryStore()
    source.write([put(fpr(1), b"r1", new=[(W, b"alice"), (F, fpr(1))]), put(fpr(2), b"r2")])
    store.write_bulk(BulkWrite(records=list(source.iter_records()), index=list(source.iter_index()),
                               counters={"keys": 2}, extra=[(b"bs", b"cursor")]), sync=False)
    assert store.get(fpr(1)) == b"r1" and store.get(fpr(2)) == b"r2"
    assert store.lookup(W, b"alice", 10) == [fpr(1)]
    assert store.lookup(F, fpr(1), 10) == [fpr(1)]
    assert store.counter("keys") == 2
    assert store.get_extra(b"bs") == b"cursor"
    assert list(store.iter_index()) == list(source.iter_index())


BAD_BULKS = {
    "short fingerprint": BulkWrite(records=[(b"abc", b"r")]),
    "empty record": BulkWrite(records=[(fpr(3), b"")]),
    "not a pair": BulkWrite(records=[fpr(3)]),  # type: ignore[list-item]
    "unknown kind": BulkWrite(index=[b"Z" + (3).to_bytes(2, "big") + b"abc" + fpr(3)]),
    "term length past the end": BulkWrite(index=[b"w" + (300).to_bytes(2, "big") + b"abc"]),
    "fingerprint of 7 bytes": BulkWrite(index=[b"w" + (3).to_bytes(2, "big") + b"abc" + b"1234567"]),
    "empty term": BulkWrite(index=[b"w" + (0).to_bytes(2, "big") + fpr(3)]),
    "bad counter": BulkWrite(counters={"": 1}),
}


@pytest.mark.parametrize("bad", BAD_BULKS.values(), ids=BAD_BULKS.keys())
def test_a_bulk_write_with_one_bad_row_leaves_nothing_behind(store: Store, bad: BulkWrite) -> None:
    good_record = (fpr(9), b"ok")
    good_entry = layout.index_entry(W, b"ok", fpr(9))
    mixed = BulkWrite(records=[good_record, *bad.records], index=[good_entry, *bad.index],
                      counters={"keys": 1, **bad.counters})
    with pytest.raises(StoreUsageError):
        store.write_bulk(mixed)
    assert store.get(fpr(9)) is None
    assert list(store.iter_index()) == []
    assert store.counter("keys") == 0
