"""The cluster policy's pure effects on key data: the blacklist filter (commutes with merge),
upload refusal, conflict ids, and the record a resolution writes (joins, converges, lifts)."""

from __future__ import annotations

from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.vclock import VersionVector
from meshkp.keys.ingest import Status, ingest
from meshkp.keys.policy import DataPolicy, resolution_record, visible_records
from meshkp.keys.record import KeyRecord, Tombstone, served_certificate_bytes
from meshkp.keys.service import AddReport
from tests.unit.keys.helpers import LIMITS, certificate
from tests.unit.keys.test_record import FULL, NODES, records

CERTS = [certificate(i, seed=b"policy-test") for i in range(3)]
FPS = [c.fingerprint for c in CERTS]


@st.composite
def stores(draw: st.DrawFn) -> dict[bytes, KeyRecord]:
    """A replica's records of up to three keys, each with a history of adds and deletes."""
    store = {}
    for cert in CERTS:
        if not draw(st.booleans()):
            continue
        record = KeyRecord.new(cert, draw(st.sampled_from(NODES)))
        for _ in range(draw(st.integers(0, 3))):
            node = draw(st.sampled_from(NODES))
            if draw(st.booleans()):
                record = record.add(cert, node)
            else:
                record = record.delete(node, draw(st.integers(0, 10**6)), "takedown", node)
        store[cert.fingerprint] = record
    return store


def join(a: dict[bytes, KeyRecord], b: dict[bytes, KeyRecord]) -> dict[bytes, KeyRecord]:
    out = dict(a)
    for fp, record in b.items():
        out[fp] = out[fp].join(record, LIMITS) if fp in out else record
    return out


def encoded(store: dict[bytes, KeyRecord]) -> dict[bytes, bytes]:
    return {fp: r.encode() for fp, r in store.items()}


@settings(max_examples=60, deadline=None)
@given(stores(), stores(), st.sets(st.sampled_from(FPS)))
def test_the_blacklist_filter_commutes_with_merge(a, b, blacklisted) -> None:
    policy = DataPolicy(1, {fp: "abuse" for fp in blacklisted})
    whole = visible_records(join(a, b), policy)
    parts = visible_records(join(visible_records(a, policy), visible_records(b, policy)), policy)
    assert encoded(whole) == encoded(parts)
    assert not set(whole) & blacklisted


def test_a_blacklisted_upload_is_refused_and_answered_403_saying_why() -> None:
    policy = DataPolicy(3, {FPS[0]: "court order 12"})
    result = ingest([CERTS[0]], lambda fp: None, lambda *a: [], "n1", LIMITS, policy.refusal)
    (outcome,) = result.outcomes
    assert outcome.status is Status.REJECTED and outcome.refused and not result.changes
    assert outcome.reason == (f"fingerprint {FPS[0].hex().upper()} is blacklisted by the cluster "
                              "policy: court order 12")
    assert AddReport.of(result).http_status == 403
    mixed = ingest([CERTS[0], CERTS[1]], lambda fp: None, lambda *a: [], "n1", LIMITS, policy.refusal)
    assert AddReport.of(mixed).http_status == 200  # the other key is taken
    bad = AddReport.of(ingest([], lambda fp: None, lambda *a: [], "n1", LIMITS))
    assert bad.http_status == 400


def _conflict(node_a: str = "n1", node_b: str = "n2") -> tuple[KeyRecord, KeyRecord]:
    """A delete on node_a concurrent with an update on node_b, of a record both had."""
    base = KeyRecord.new(CERTS[0], "n0")
    deleted = base.delete(node_a, 100, "takedown", "alice")
    updated = base.add(CERTS[0], node_b)
    return deleted, updated


def test_a_conflict_id_is_the_same_whatever_the_merge_order() -> None:
    deleted, updated = _conflict()
    one = deleted.join(updated, LIMITS).conflict
    other = updated.join(deleted, LIMITS).conflict
    assert one is not None and other is not None
    assert one.id == other.id and len(one.id) == 32
    # Another concurrent add makes another conflict, with another id.
    later = updated.add(CERTS[0], "n3").join(deleted, LIMITS).conflict
    assert later is not None and later.id != one.id


def _resolved(keep_update: bool) -> tuple[KeyRecord, KeyRecord, KeyRecord]:
    deleted, updated = _conflict()
    merged = deleted.join(updated, LIMITS)
    decision = resolution_record(merged.fingerprint, keep_update, merged.vv, 200,
                                 "conflict resolved", "ops")
    return deleted, updated, decision


def test_keep_delete_dominates_both_sides_and_a_later_sync_does_not_reopen_it() -> None:
    deleted, updated, decision = _resolved(keep_update=False)
    # Every replica joins the same decision into whatever it holds, in any order.
    states = [reduce(lambda x, y: x.join(y, LIMITS), order) for order in
              ([deleted, updated, decision], [decision, updated, deleted], [updated, decision])]
    final = reduce(lambda x, y: x.join(y, LIMITS), [*states, deleted])
    for state in (*states[:2], final):
        assert state.deleted and state.conflict is None
        assert state.encode() == final.encode()
    assert served_certificate_bytes(final.encode()) is None


def test_keep_update_lifts_the_tombstone_until_a_later_delete() -> None:
    deleted, updated, decision = _resolved(keep_update=True)
    resolved = deleted.join(updated, LIMITS).join(decision, LIMITS)
    assert not resolved.deleted and resolved.conflict is None
    assert resolved.live_certificate is not None
    assert served_certificate_bytes(resolved.encode()) == resolved.certificate.to_bytes()
    # The decision holds against the stale sides, whichever joins it, in any order.
    for stale in (deleted, updated):
        assert decision.join(stale, LIMITS).join(resolved, LIMITS).encode() == resolved.encode()
    assert KeyRecord.decode(resolved.encode()) == resolved
    # The delete keeps its name; a delete made after the decision deletes again.
    assert resolved.tombstone is not None and resolved.tombstone.actor == "alice"
    again = resolved.delete("n1", 300, "second takedown", "bob")
    assert again.deleted and again.conflict is None


def test_records_never_lifted_keep_their_four_field_tombstone_bytes() -> None:
    deleted, _ = _conflict()
    assert len(deleted.tombstone.to_obj()) == 4
    lifted = Tombstone(VersionVector(), 0, "", "", lifted=VersionVector({"n1": 1}))
    assert Tombstone.from_obj(lifted.to_obj()) == lifted


@given(records(), records(), st.booleans(), st.sampled_from(NODES))
def test_joins_with_a_resolution_keep_the_crdt_laws(a: KeyRecord, b: KeyRecord, keep_update: bool,
                                                      node: str) -> None:
    covers = a.vv.merge(b.vv).increment(node)
    decision = resolution_record(FULL.fingerprint, keep_update, covers, 5, "r", "ops")
    assert a.join(decision, LIMITS).join(b, LIMITS) == b.join(a, LIMITS).join(decision, LIMITS)
    assert decision.join(a, LIMITS).join(decision, LIMITS) == a.join(decision, LIMITS)


async def test_an_identical_reupload_racing_a_delete_is_a_listed_conflict_not_a_silent_loss() -> None:
    # Both nodes hold the key; a client re-uploads it, unchanged, to A while an operator deletes
    # it on B; then the two exchange their records (what anti-entropy does).
    from meshkp.keys.commit import DELETED, PULLED, Committer, joining
    from meshkp.keys.parse import KeyParser
    from meshkp.keys.service import KeyService
    from meshkp.openpgp.armor import armor
    from meshkp.replication.deletes import tombstone
    from meshkp.store.executor import AsyncStore
    from meshkp.store.memory import MemoryStore

    nodes = []
    for name in ("a", "b"):
        committer = Committer(LIMITS)
        store = AsyncStore(MemoryStore())
        nodes.append((KeyService(store, name, committer, KeyParser(committer, 1 << 30)), store))
    (a, store_a), (b, store_b) = nodes
    fp = FPS[0]
    try:
        base = KeyRecord.new(CERTS[0], "origin")
        for service, store in nodes:
            await service.committer.run(store, joining([base]), PULLED)
        report = await a.add(armor(CERTS[0].to_bytes()).encode())
        assert [o.status for o in report.outcomes] == [Status.UNCHANGED]
        assert report.changed == (fp,) and report.held == ()  # written: a re-add
        await b.committer.run(store_b, tombstone(fp, "b", 10, "takedown", "ops"), DELETED)
        records = [KeyRecord.decode(await s.get(fp)) for s in (store_a, store_b)]
        for service, store in nodes:
            await service.committer.run(store, joining(records), PULLED)
        merged = [KeyRecord.decode(await s.get(fp)) for s in (store_a, store_b)]
        assert merged[0] == merged[1]
        conflict = merged[0].conflict
        assert conflict is not None and conflict.unseen_adds == {"a": 1}  # the re-add is listed
        assert await a.served_key(fp) is None  # delete-wins until the rule decides
    finally:
        await store_a.close()
        await store_b.close()
