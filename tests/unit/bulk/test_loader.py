"""The bulk loader end to end on a MemoryStore: outcomes, idempotence, bad input, parallel = serial."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.keygen import generate_key
from meshkp.bulk.loader import BulkLoader, LoadConfig, LoadError, resolve_inputs
from meshkp.bulk.source import InputError
from meshkp.keys.ingest import KEYS_COUNTER
from meshkp.keys.record import KeyRecord
from meshkp.openpgp.armor import armor
from meshkp.openpgp.keytext import parse_keytext
from meshkp.openpgp.packet import Packet
from meshkp.store.memory import MemoryStore


def ring(indices: range, with_subkey: bool = True) -> bytes:
    return b"".join(generate_key(i, with_subkey=with_subkey).data for i in indices)


def load(paths: list[Path], store: MemoryStore, **config: int):
    settings = {"workers": 0, **config}
    with BulkLoader(LoadConfig(node_id="node-a", **settings)) as loader:  # type: ignore[arg-type]
        return loader.load(resolve_inputs(paths), store)


def contents(store: MemoryStore) -> dict[bytes, bytes]:
    return dict(store.iter_records())


def test_binary_keyring_loads_every_key_as_upload_would(tmp_path: Path) -> None:
    path = tmp_path / "ring.gpg"
    path.write_bytes(ring(range(12)))
    store = MemoryStore()
    summary = load([path], store)
    assert (summary.keys, summary.added, summary.rejected_total) == (12, 12, 0)
    assert summary.keys_in_store == store.counter(KEYS_COUNTER) == 12
    for i in range(12):
        key = generate_key(i)
        (expected,) = parse_keytext(key.data)
        stored = KeyRecord.decode(store.get(key.fingerprint) or b"")
        assert stored.certificate == expected
        assert stored.vv.to_obj() == {"node-a": 1}


def test_loading_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ring.gpg"
    path.write_bytes(ring(range(6)))
    store = MemoryStore()
    load([path], store)
    before = contents(store)
    again = load([path], store)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 6)
    assert contents(store) == before


def test_new_packets_are_merged(tmp_path: Path) -> None:
    bare, full = tmp_path / "bare.gpg", tmp_path / "full.asc"
    bare.write_bytes(ring(range(3), with_subkey=False))
    full.write_text(armor(ring(range(3))))
    store = MemoryStore()
    load([bare], store)
    summary = load([full], store)
    assert (summary.updated, summary.added) == (3, 0)
    cert = KeyRecord.decode(store.get(generate_key(0).fingerprint) or b"").certificate
    assert cert is not None and len(cert.subkeys) == 1


def test_duplicates_across_batches_and_tasks(tmp_path: Path) -> None:
    path = tmp_path / "dups.gpg"
    path.write_bytes(ring(range(10)) + ring(range(5, 15)))
    store = MemoryStore()
    summary = load([path], store, batch_keys=7, task_keys=3)
    assert (summary.keys, summary.added, summary.unchanged) == (20, 15, 5)
    assert store.counter(KEYS_COUNTER) == 15


def test_rejections_are_counted_by_reason(tmp_path: Path) -> None:
    forged = bytearray(generate_key(100, with_subkey=False).data)
    forged[-1] ^= 0x01  # the certification's last signature byte: the UID loses its binding
    public_body = generate_key(101).data[2 : 2 + generate_key(101).data[1]]
    secret = Packet(5, public_body + b"\x00secret").encode()
    path = tmp_path / "mixed.gpg"
    path.write_bytes(bytes(forged) + secret + ring(range(2)))
    store = MemoryStore()
    summary = load([path], store)
    assert summary.added == 2
    assert summary.rejected == {"no valid self-signature": 1, "secret key material": 1}
    assert generate_key(101).fingerprint.hex().upper() in summary.examples["secret key material"]
    assert store.get(generate_key(100).fingerprint) is None


def test_malformed_file_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.gpg", tmp_path / "bad.gpg"
    good.write_bytes(ring(range(3)))
    bad.write_bytes(ring(range(10, 14))[:-7])
    store = MemoryStore()
    with pytest.raises(LoadError, match=r"bad\.gpg: .*truncated.*nothing of this file"):
        load([bad], store)
    assert contents(store) == {}
    # Files before the bad one are loaded; the bad one still contributes nothing.
    with pytest.raises(LoadError) as info:
        load([good, bad], store)
    assert info.value.summary.added == 3
    assert set(contents(store)) == {generate_key(i).fingerprint for i in range(3)}


def test_text_that_is_not_armor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readme.txt"
    path.write_text("hello\n")
    with pytest.raises(LoadError, match="readme.txt"):
        load([path], MemoryStore())


def test_dump_directory_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "hkp-dump-0001.pgp").write_bytes(ring(range(2, 4)))
    (tmp_path / "hkp-dump-0000.pgp").write_bytes(ring(range(2)))
    (tmp_path / "notes.txt").write_text("not loaded")
    assert [p.name for p in resolve_inputs([tmp_path])] == [
        "hkp-dump-0000.pgp", "hkp-dump-0001.pgp"
    ]
    assert load([tmp_path], MemoryStore()).added == 4
    with pytest.raises(InputError, match="no such file"):
        resolve_inputs([tmp_path / "missing.pgp"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no hkp-dump"):
        resolve_inputs([empty])


def test_worker_processes_store_the_same_as_in_process(tmp_path: Path) -> None:
    path = tmp_path / "ring.gpg"
    path.write_bytes(ring(range(40)) + ring(range(30, 45), with_subkey=False))
    serial, parallel = MemoryStore(), MemoryStore()
    one = load([path], serial, task_keys=4, batch_keys=9)
    two = load([path], parallel, workers=2, task_keys=4, batch_keys=9, max_in_flight=3)
    assert contents(serial) == contents(parallel)
    assert one.to_json()["totals"] == two.to_json()["totals"]


def test_binary_key_whose_user_id_looks_like_armor_loads(tmp_path: Path) -> None:
    tricky = generate_key(7, user_id="-----BEGIN PGP PUBLIC KEY BLOCK----- <x@example.org>")
    path = tmp_path / "tricky.gpg"
    path.write_bytes(tricky.data + ring(range(2)))
    store = MemoryStore()
    summary = load([path], store)
    assert (summary.added, summary.rejected_total) == (3, 0)
    cert = KeyRecord.decode(store.get(tricky.fingerprint) or b"").certificate
    assert cert is not None and list(cert.user_ids) == [tricky.user_id.encode()]


_SAMPLE = ring(range(3), with_subkey=True)


@given(flips=st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)),
                     max_size=4),
       cut=st.integers(0, len(_SAMPLE)))
@settings(max_examples=40)
def test_mutated_and_truncated_keyrings_never_crash(
    flips: list[tuple[int, int]], cut: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = bytearray(_SAMPLE[:cut])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    path = tmp_path_factory.mktemp("fuzz") / "keys.gpg"
    path.write_bytes(bytes(data))
    store = MemoryStore()
    try:
        summary = load([path], store)
    except LoadError:
        assert contents(store) == {}  # a file that cannot be framed stores nothing
        return
    assert summary.keys == summary.added + summary.updated + summary.unchanged + summary.rejected_total
    assert store.counter(KEYS_COUNTER) == len(contents(store)) == summary.added
