"""The one commit path of a key's state: decide, write one batch, tell the observers.

Every write of a key goes through `Committer`: an upload (keys/ingest.py decides), a record
from a peer and a delete (`join_states` decides), a bulk load (ingest again). A decision is a
pure function of the stored states and the policy (`Committer.limits`) that returns `Change`s;
the committer turns them into ONE store batch holding, per key, the record, its index terms
(none while a tombstone stands), the key and tombstone counters, the conflict marker and the
Merkle leaf (keys/merkle_index.py), so nothing derived from a record can disagree with it after
a crash. Then every observer sees the `Commit`: the key service drops what its caches hold of
the keys and terms, replication pushes what changed. A writer cannot forget either of them.

The control plane's policy plugs in here: every decision is taken under `Committer.limits`, the
one policy value, which it replaces at run time (the next commit uses the new one).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

from meshkp.errors import InvalidPeerRecord
from meshkp.keys.ingest import KEYS_COUNTER, record_terms
from meshkp.keys.merkle_index import TOMBSTONES_COUNTER, MerkleIndex
from meshkp.keys.record import KeyRecord
from meshkp.keys.state import Change, KeyState, Prepared
from meshkp.limits import Limits
from meshkp.store.protocol import IndexTerm, RecordWrite, Store

log = logging.getLogger(__name__)

# Extra-namespace marker of a record in conflict (add concurrent with delete), so that
# GET /cluster/conflicts lists them without scanning every record.
CONFLICT_PREFIX = b"cf"


class Origin(str, Enum):
    """Where a committed write came from."""

    UPLOAD = "upload"  # POST /pks/add on this node
    DELETE = "delete"  # an operator's delete on this node
    PUSH = "push"  # a peer pushed it (gossip)
    PULL = "pull"  # anti-entropy fetched it from a peer
    LOAD = "load"  # a bulk load (meshkp load)
    POLICY = "policy"  # the control plane's decision, applied by every node itself (not pushed)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a write came from, with what a received push said about spreading it further."""

    origin: Origin
    sender: str | None = None  # the peer that sent it (PUSH)
    forward: bool = False  # PushBatch.forward: a new write being spread, not an anti-entropy batch
    relay: bool = False  # PushBatch.relay: the sender did not reach every peer itself
    origin_ts: float = 0.0  # when the first node accepted it (Unix time; 0: unknown)


UPLOADED = Source(Origin.UPLOAD)
DELETED = Source(Origin.DELETE)
PULLED = Source(Origin.PULL)
LOADED = Source(Origin.LOAD)
POLICY = Source(Origin.POLICY)


@dataclass(frozen=True, slots=True)
class Commit:
    """A committed write, as observers see it: the new states, the batch, where it came from."""

    source: Source
    states: Mapping[bytes, KeyState]  # changed fingerprint -> new state, in commit order
    writes: tuple[RecordWrite, ...]

    @property
    def fingerprints(self) -> list[bytes]:
        return list(self.states)

    def terms(self) -> set[IndexTerm]:
        """Every index term the batch added or removed."""
        terms: set[IndexTerm] = set()
        for write in self.writes:
            terms |= write.old_terms
            terms |= write.new_terms
        return terms


Observer = Callable[[Commit], None]


class Decision(Protocol):
    """What a decide function returns: the changes to commit; the commit fills in the writes.

    A decision may also carry `extra`: extra-namespace entries to write in the same batch as
    its first change (the admin-delete audit outbox), so they cannot be lost apart from it.
    """

    changes: list[Change]
    writes: list[RecordWrite]


D = TypeVar("D", bound=Decision)
Decide = Callable[[Store, Limits], D]


class ExclusiveStore(Protocol):
    """What the committer needs of meshkp.store.executor.AsyncStore."""

    def run_exclusive(self, fn: Callable[[Store], Any], sync: bool = True) -> Awaitable[Any]: ...


@dataclass(slots=True)
class MergeResult:
    """What one join of received states decided: per input, whether it changed the state."""

    changed: list[bool] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    writes: list[RecordWrite] = field(default_factory=list)  # filled by the commit
    extra: tuple[tuple[bytes, bytes | None], ...] = ()  # written with the first change

    @property
    def records(self) -> dict[bytes, KeyState]:
        """The new state of each changed key, by fingerprint."""
        return {change.fingerprint: change.after for change in self.changes}


def join_states(store: Store, incoming: Sequence[KeyState], limits: Limits) -> MergeResult:
    """Join each incoming state with the stored one (KeyRecord.join); keep what changed.

    A Prepared state of a key the store does not hold is taken as it is (its bytes and terms
    were computed when it was prepared); any other is joined with the stored state, and the
    index terms of the joined state are computed here, once. InvalidPeerRecord if a state
    cannot be joined (another primary key packet) or indexed (packets only a peer could send).
    """
    result = MergeResult()
    current: dict[bytes, tuple[KeyState | None, bytes | None]] = {}
    original: dict[bytes, KeyRecord | None] = {}
    changes: dict[bytes, Change] = {}
    for item in incoming:
        fingerprint = item.fingerprint
        if fingerprint not in current:
            data = store.get(fingerprint)
            stored = KeyRecord.decode(data) if data is not None else None
            current[fingerprint] = (stored, data)
            original[fingerprint] = stored
        state, data = current[fingerprint]
        merged: KeyState
        if state is None and isinstance(item, Prepared):
            merged, encoded = item, item.encoded
        else:
            record = item.key_record() if isinstance(item, Prepared) else item
            if state is None:
                merged = record
            else:
                base = state.key_record() if isinstance(state, Prepared) else state
                merged = base.join(record, limits)
            encoded = merged.encode()
        if encoded == data:
            result.changed.append(False)
            continue
        result.changed.append(True)
        current[fingerprint] = (merged, encoded)
        changes[fingerprint] = Change(original[fingerprint], merged, encoded)
    result.changes = [_indexed(change, limits) for change in changes.values()]
    return result


def _indexed(change: Change, limits: Limits) -> Change:
    """`change` with the index terms of its new state, prepared (none are computed again)."""
    after = change.after
    if isinstance(after, Prepared):
        return change
    try:
        terms = record_terms(after, limits)
    # The joined packets came from a peer: a parse failure the structural checks let through
    # must refuse the batch, never escape as a crash.
    except Exception as exc:
        raise InvalidPeerRecord(
            f"index terms of record {after.fingerprint.hex()} cannot be computed: {exc!r}"
        ) from None
    return Change(change.before, Prepared.of(after, terms, change.encoded), change.encoded)


def joining(states: Sequence[KeyState]) -> Decide[MergeResult]:
    """The decision (for Committer.run/apply) that joins `states` into the store."""
    return lambda store, limits: join_states(store, states, limits)


def _facts(state: KeyState | None, limits: Limits) -> tuple[frozenset[IndexTerm], bool, bool, bool]:
    """(index terms, live, deleted, in conflict) of a state; a Prepared one has them ready."""
    if state is None:
        return frozenset(), False, False, False
    if isinstance(state, Prepared):
        return state.terms, state.live, state.deleted, state.conflict
    live = not state.deleted and state.certificate is not None
    return record_terms(state, limits), live, state.deleted, state.conflict is not None


def record_write(change: Change, limits: Limits) -> RecordWrite:
    """The RecordWrite of one change (without its Merkle update, which covers the batch)."""
    old_terms, was_live, was_deleted, was_conflict = _facts(change.before, limits)
    new_terms, is_live, is_deleted, is_conflict = _facts(change.after, limits)
    counters: dict[str, int] = {}
    if is_live != was_live:
        counters[KEYS_COUNTER] = int(is_live) - int(was_live)
    if is_deleted != was_deleted:
        counters[TOMBSTONES_COUNTER] = int(is_deleted) - int(was_deleted)
    extra: tuple[tuple[bytes, bytes | None], ...] = ()
    if was_conflict != is_conflict:
        extra = ((CONFLICT_PREFIX + change.fingerprint, b"1" if is_conflict else None),)
    return RecordWrite(
        fingerprint=change.fingerprint,
        record=change.encoded,
        old_terms=old_terms,
        new_terms=new_terms,
        counters=counters,
        extra=extra,
    )


class Committer:
    """Commits every change of a key's state (see the module doc); constructing it does no I/O."""

    def __init__(self, limits: Limits, merkle: MerkleIndex | None = None) -> None:
        # The policy every commit is decided under; the control plane replaces it at run time.
        self.limits = limits
        self.merkle = merkle or MerkleIndex()
        self._observers: list[Observer] = []
        self._bulk_observers: list[Callable[[], None]] = []

    def observe(self, observer: Observer) -> None:
        """Call `observer` with every commit that wrote something, after it is written."""
        self._observers.append(observer)

    def observe_bulk(self, observer: Callable[[], None]) -> None:
        """Call `observer()` after rows were written around this path (a snapshot copy's
        Store.write_bulk): any key may have changed, so caches must drop everything."""
        self._bulk_observers.append(observer)

    def bulk_written(self) -> None:
        """Tell the bulk observers that rows were written without a Commit (see observe_bulk)."""
        for observer in self._bulk_observers:
            observer()

    async def run(self, store: ExclusiveStore, decide: Decide[D], source: Source,
                  sync: bool = True) -> D:
        """Decide and write on the store's writer thread (no other write in between); the
        observers see the commit on the event loop once it is durable (with `sync`)."""
        decision, commit = await store.run_exclusive(
            lambda view: self._commit(view, decide, source, sync), sync=sync)
        self._publish(commit)
        return decision  # type: ignore[no-any-return]

    def apply(self, store: Store, decide: Decide[D], source: Source, sync: bool = True) -> D:
        """Decide and write in the calling thread (a bulk load, which owns its store)."""
        decision, commit = self._commit(store, decide, source, sync)
        self._publish(commit)
        return decision

    def _commit(self, store: Store, decide: Decide[D], source: Source,
                sync: bool) -> tuple[D, Commit]:
        limits = self.limits  # one policy for the whole decision, even if replaced meanwhile
        decision = decide(store, limits)
        writes = [record_write(change, limits) for change in decision.changes]
        extra = getattr(decision, "extra", ())
        if extra and writes:
            writes[0] = dataclasses.replace(writes[0], extra=(*writes[0].extra, *extra))
        decision.writes = self.merkle.attach(store, writes)
        if decision.writes:
            store.write(decision.writes, sync=sync)
        states = {change.fingerprint: change.after for change in decision.changes}
        return decision, Commit(source, states, tuple(decision.writes))

    def _publish(self, commit: Commit) -> None:
        if not commit.writes:
            return
        for observer in self._observers:
            try:
                observer(commit)
            except Exception:  # an observer's bug must not fail a write that is stored
                log.exception("event=commit_observer_failed observer=%r", observer)
