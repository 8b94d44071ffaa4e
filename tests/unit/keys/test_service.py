"""KeyService on AsyncStore(MemoryStore): lookups, caching and invalidation on every commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshkp.errors import InvalidRequest, NotFound
from meshkp.http.mr import key_block
from meshkp.keys.commit import Committer
from meshkp.keys.ingest import Status
from meshkp.keys.parse import KeyParser
from meshkp.keys.query import parse_query
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.openpgp.armor import dearmor
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIMITS = Limits()
ALICE = "10FE8CF1B483F7525039AA2A361BC1F023E0DCCA"


@pytest.fixture
async def service():
    store = AsyncStore(MemoryStore())
    parser = KeyParser(Committer(LIMITS), process_threshold=1 << 30)
    yield KeyService(store, "n1", Committer(LIMITS), parser)
    await store.close()


def q(text: str, exact: bool = False):
    return parse_query(text, exact, LIMITS)


async def test_get_is_served_from_cache_and_refreshed_after_update(service: KeyService) -> None:
    await service.add((FIXTURES / "alice_unsigned.asc").read_bytes())
    first = await service.get(q("0x" + ALICE))
    misses = service.served.misses
    assert await service.get(q("0x" + ALICE)) is first  # the cached bytes object
    assert service.served.misses == misses
    report = await service.add((FIXTURES / "alice_signed.asc").read_bytes())
    assert [o.status.value for o in report.outcomes] == ["updated"]
    second = await service.get(q("0x" + ALICE))
    assert len(dearmor(second)[0]) > len(dearmor(first)[0])


async def test_index_mr_lines_are_cached_and_invalidated(service: KeyService) -> None:
    await service.add((FIXTURES / "test-key.asc").read_bytes())
    def pub_flags(block: bytes) -> bytes:
        return block.split(b"\n")[0].split(b":")[6]

    (block,), _ = await service.index_mr(q("test@example.org"), key_block)
    assert b"r" not in pub_flags(block)
    await service.add((FIXTURES / "test-key-revoke.asc").read_bytes())
    (block,), _ = await service.index_mr(q("test@example.org"), key_block)
    assert b"r" in pub_flags(block)


async def test_term_cache_sees_new_keys(service: KeyService) -> None:
    with pytest.raises(NotFound):
        await service.get(q("steven-test@example.com"))
    await service.add((FIXTURES / "steven-12345.asc").read_bytes())
    assert await service.get(q("steven-test@example.com"))


async def test_exact_user_id_filter(service: KeyService) -> None:
    await service.add((FIXTURES / "steven-12345.asc").read_bytes())
    uid = "steven-12345 (Test Encryption) <steven-test@example.com>"
    assert await service.get(q(uid.upper(), exact=True))
    with pytest.raises(NotFound):
        await service.get(q("Somebody Else <steven-test@example.com>", exact=True))


async def test_add_without_keys_is_invalid(service: KeyService) -> None:
    with pytest.raises(InvalidRequest):
        await service.add(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n")


async def test_stats_count_keys(service: KeyService) -> None:
    await service.add((FIXTURES / "ecc_keys.asc").read_bytes())
    stats = await service.stats()
    assert stats["keys"] == 6 and stats["software"] == "meshkp"


@pytest.fixture(scope="module")
def keyword_keys() -> tuple[list[bytes], bytes]:
    """Three generated keys sharing the word "common"; the one with the highest fingerprint
    also has "rare". Built outside the event loop (key generation is CPU work)."""
    from bench.keygen import generate_key

    seed = b"keyword-scan"
    rare = max(range(3), key=lambda i: generate_key(i, seed=seed).fingerprint)
    keys = [
        generate_key(i, seed=seed, user_id=f"{'common rare' if i == rare else 'common'} <k{i}@x.org>")
        for i in range(3)
    ]
    return [k.data for k in keys], keys[rare].fingerprint


@pytest.mark.parametrize("scan, found", [(1, False), (3, True)])
async def test_keywords_are_intersected_over_limits_keyword_scan(
    keyword_keys: tuple[list[bytes], bytes], scan: int, found: bool
) -> None:
    keys, rare = keyword_keys
    limits = Limits(keyword_scan=scan, search_results=1, get_results=1)
    store = AsyncStore(MemoryStore())
    parser = KeyParser(Committer(limits), process_threshold=1 << 30)
    service = KeyService(store, "n1", Committer(limits), parser)
    try:
        for data in keys:
            await service.add(data)
        # "common" is scanned first only up to `scan` keys (fingerprint order): with 1, the
        # key that also has "rare" is beyond it and the AND finds nothing.
        assert (await service.find(parse_query("common rare", False, limits), 1) == [rare]) is found
    finally:
        await store.close()


async def test_index_mr_valid_until_is_the_earliest_flag_flip_of_all_keys() -> None:
    # gentoo-l2-infra (first in fingerprint order) expires at 1782907201; gentoo-l1 already
    # expired at `now`, so nothing of it flips again. The reply stays correct only until the
    # first key's "e" flag appears, on the first call (nothing cached) and on later ones.
    now = 1782907200.5
    store = AsyncStore(MemoryStore())
    parser = KeyParser(Committer(LIMITS), process_threshold=1 << 30)
    service = KeyService(store, "n1", Committer(LIMITS), parser, clock=lambda: now)
    try:
        for name in ("gentoo-l1.asc", "gentoo-l2-infra.asc"):
            await service.add((FIXTURES / name).read_bytes())
        for _ in range(2):
            blocks, valid_until = await service.index_mr(q("gentoo"), key_block)
            assert len(blocks) == 2
            assert valid_until == 1782907201.0
    finally:
        await store.close()


async def test_upload_of_more_keys_than_upload_keys_is_refused_before_building_a_reply() -> None:
    # 2-byte "keys" (an empty public key packet) each become a rejection with a ~150-byte
    # reply line: 2 MB of them made a 145 MB reply and ~900 MB of memory.
    from meshkp.errors import LimitExceeded

    limits = Limits(upload_keys=50)
    store = AsyncStore(MemoryStore())
    parser = KeyParser(Committer(limits), process_threshold=1 << 30)
    service = KeyService(store, "n1", Committer(limits), parser)
    try:
        report = await service.add(b"\xc6\x00" * 50)
        assert report.count(Status.REJECTED) == 50
        with pytest.raises(LimitExceeded, match="upload_keys") as raised:
            await service.add(b"\xc6\x00" * 51)
        assert raised.value.limit == "upload_keys"
        assert await service.store.counter("keys") == 0
    finally:
        await store.close()


async def test_replies_stop_at_reply_bytes_but_always_serve_one_key(
    keyword_keys: tuple[list[bytes], bytes],
) -> None:
    # Without a byte budget, a word shared by get_results keys of key_bytes each makes one
    # op=get (or index) build ~500 MB.
    keys, _ = keyword_keys
    sizes = []
    for reply_bytes in (1, 10 * 1024 * 1024):
        limits = Limits(reply_bytes=reply_bytes)
        store = AsyncStore(MemoryStore())
        parser = KeyParser(Committer(limits), process_threshold=1 << 30)
        service = KeyService(store, "n1", Committer(limits), parser)
        try:
            for data in keys:
                await service.add(data)
            query = parse_query("common", False, limits)
            got = dearmor(await service.get(query))[0]
            blocks, _ = await service.index_mr(query, key_block)
            sizes.append((len(await service.index(query)), len(blocks), len(got)))
        finally:
            await store.close()
    (one, one_mr, small), (three, three_mr, big) = sizes
    assert (one, one_mr, three, three_mr) == (1, 1, 3, 3) and small < big


async def test_a_retried_upload_still_waits_for_the_consistency_level() -> None:
    # A quorum upload that timed out (503) and is retried finds the key unchanged here: the
    # retry must still be pushed and acknowledged, not answered 200 at once. The report names
    # the keys to wait for: changed by the first upload, held by the retry.
    keytext = (FIXTURES / "alice_unsigned.asc").read_bytes()
    store = AsyncStore(MemoryStore())
    committer = Committer(LIMITS)
    service = KeyService(store, "n1", committer, KeyParser(committer, process_threshold=1 << 30))
    try:
        collected: list[list[bytes]] = []
        for _ in range(2):
            report = await service.add(keytext)
            collected.append(list(report.changed + report.held))
        assert collected[0] and collected[1] == collected[0]
    finally:
        await store.close()


async def test_caches_drop_what_any_commit_changed_not_only_uploads(service: KeyService) -> None:
    # Replication and deletes commit through the same committer: a cached key must not be
    # served after another writer changed it (there is no hook for them to remember to call).
    from meshkp.keys.commit import DELETED, joining
    from meshkp.keys.record import KeyRecord

    await service.add((FIXTURES / "alice_unsigned.asc").read_bytes())
    assert await service.get(q("0x" + ALICE))  # cached now
    terms_epoch = service.terms.epoch
    stored = KeyRecord.decode(await service.store.get(bytes.fromhex(ALICE)))
    deleted = stored.delete("n2", 1, "takedown", "ops")
    await service.committer.run(service.store, joining([deleted]), DELETED)
    with pytest.raises(NotFound):
        await service.get(q("0x" + ALICE))
    assert service.terms.epoch > terms_epoch
