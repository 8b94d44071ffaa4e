"""KeyService: the keyserver's operations (add, search, get, index, stats, hget, hashquery).

The HTTP layer calls only this. Everything that touches LevelDB runs on the store's
executor; uploads are committed through the node's one commit path (meshkp/keys/commit.py).
What lookups serve is cached by fingerprint (armored key, index view, mr lines) and search
results by index term; the service observes every commit, whoever made it (an upload,
replication, a delete), and drops what the commit changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshkp.errors import NotFound
from meshkp.keys.cache import ServedCache, ServedKey, TermCache
from meshkp.keys.commit import UPLOADED, Commit, Committer
from meshkp.keys.ingest import IngestResult, KeyOutcome, Status, uploading
from meshkp.keys.parse import KeyParser, parsing_upload, require_keys
from meshkp.keys.policy import OPEN, DataPolicy
from meshkp.keys.query import Query
from meshkp.keys.record import KeyRecord, served_certificate_bytes
from meshkp.keys.viewbuild import build_view
from meshkp.limits import Limits
from meshkp.openpgp.armor import armor
from meshkp.openpgp.keyview import KeyView
from meshkp.store.protocol import IndexKind, IndexTerm, Store

log = logging.getLogger(__name__)

# Bytes of keys in one /pks/hashquery reply (SKS asks for 100 digests at a time). Hockeypuck
# bounds it the same way; the peer asks again for what is missing.
HASHQUERY_MAX_BYTES = 32 * 1024 * 1024
# Keys above this size are armored (and their index views built and rendered) in a thread
# instead of on the event loop.
_INLINE_ARMOR_BYTES = 16 * 1024


class AsyncStoreLike(Protocol):
    """What KeyService needs of meshkp.store.executor.AsyncStore."""

    async def get(self, fingerprint: bytes) -> bytes | None: ...

    async def lookup(self, kind: IndexKind, term: bytes, limit: int) -> list[bytes]: ...

    async def counter(self, name: str) -> int: ...

    async def run_exclusive(self, fn: Callable[[Store], Any], sync: bool = True) -> Any: ...

    @property
    def writing_alone(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AddReport:
    """The outcome of one POST /pks/add, per key in upload order, and the keys it touched."""

    outcomes: tuple[KeyOutcome, ...]
    # Fingerprints whose state the upload changed here, and those it found already stored
    # unchanged (a retry after a 503, or a key another client uploaded): x-consistency waits
    # for both to be acknowledged, since a held key is not known to be on other nodes yet.
    changed: tuple[bytes, ...] = ()
    held: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, result: IngestResult) -> AddReport:
        changed = tuple(result.records)
        held = [bytes.fromhex(o.fingerprint) for o in result.outcomes
                if o.status is Status.UNCHANGED and o.fingerprint]
        held = [fp for fp in dict.fromkeys(held) if fp not in changed]  # a re-add is changed
        return cls(tuple(result.outcomes), changed, tuple(held))

    @property
    def accepted(self) -> bool:
        """True if any key was added, updated or already present."""
        return any(o.status is not Status.REJECTED for o in self.outcomes)

    @property
    def http_status(self) -> int:
        """200 if any key was taken; else 403 when the cluster policy refused one (the
        blacklist: sending it again will not help), else 400."""
        if self.accepted:
            return 200
        return 403 if any(o.refused for o in self.outcomes) else 400

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    def to_json(self) -> dict[str, object]:
        return {
            "added": self.count(Status.ADDED),
            "updated": self.count(Status.UPDATED),
            "unchanged": self.count(Status.UNCHANGED),
            "rejected": self.count(Status.REJECTED),
            "keys": [o.to_json() for o in self.outcomes],
        }

    def to_text(self) -> str:
        lines = [
            f"{self.count(Status.ADDED)} added, {self.count(Status.UPDATED)} updated, "
            f"{self.count(Status.UNCHANGED)} unchanged, {self.count(Status.REJECTED)} rejected"
        ]
        for o in self.outcomes:
            line = f"{o.status.value:<9} {o.fingerprint or '(unidentified)'}"
            if o.reason:
                line += f": {o.reason}"
            elif o.user_ids:
                line += f" {o.user_ids[0]}"
            lines.append(line)
        return "\n".join(lines) + "\n"


class KeyService:
    """The key operations of one node; constructing it does no I/O."""

    def __init__(
        self,
        store: AsyncStoreLike,
        node_id: str,
        committer: Committer,
        parser: KeyParser,
        *,
        served_cache_bytes: int = 64 * 1024 * 1024,
        term_cache_entries: int = 50_000,
        sync_writes: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.committer = committer
        self.parser = parser
        self.sync_writes = sync_writes
        self.clock = clock
        self.served = ServedCache(served_cache_bytes)
        self.terms = TermCache(term_cache_entries)
        self.started = clock()
        # The cluster policy's blacklist (meshkp/keys/policy.py): hidden from every lookup,
        # refused on upload. Replaced whole by set_policy.
        self.policy: DataPolicy = OPEN
        self._uploads = 0  # add() calls in progress
        committer.observe(self._committed)
        committer.observe_bulk(self._bulk_written)

    def set_policy(self, policy: DataPolicy) -> None:
        """Apply a new blacklist from the next request on; cached keys whose visibility
        changed are dropped (the served cache's epoch moves, so the reply cache's entries go
        too). The term cache holds fingerprints before the filter, so it stays."""
        old, self.policy = self.policy, policy
        flipped = set(old.blacklist).symmetric_difference(policy.blacklist)
        if flipped:
            self.served.invalidate(flipped)
            log.info("event=blacklist_applied version=%d blacklisted=%d changed=%d",
                     policy.version, len(policy.blacklist), len(flipped))

    @property
    def limits(self) -> Limits:
        """The node's current policy (the committer holds it)."""
        return self.committer.limits

    # -- writes ----------------------------------------------------------------------------

    async def add(self, keytext: bytes) -> AddReport:
        """Parse, normalise and merge an upload; OpenPGPError if it cannot be framed at all.

        A small upload with nothing to overlap (no other upload in progress, writes coming one
        at a time) is parsed in its commit job: one thread hop each way (meshkp/keys/parse.py).
        Otherwise it is parsed first, in a thread, while the writer commits the others."""
        alone = self._uploads == 0 and self.store.writing_alone
        self._uploads += 1
        try:
            if alone and self.parser.in_commit(keytext):
                decide = parsing_upload(keytext, self.node_id, self.policy.refusal, readd=True)
                return AddReport.of(await self.committer.run(
                    self.store, decide, UPLOADED, sync=self.sync_writes))
            items = require_keys(await self.parser.parse(keytext))
            return AddReport.of(await self.apply(items))
        finally:
            self._uploads -= 1

    async def apply(self, items: Sequence[Any]) -> IngestResult:
        """Merge parsed keytext items into the store atomically (read-merge-write, exclusive)."""

        decide = uploading(items, self.node_id, self.policy.refusal, readd=True)
        return await self.committer.run(self.store, decide, UPLOADED, sync=self.sync_writes)

    def _committed(self, commit: Commit) -> None:
        """Drop cached data of the written keys and terms (every commit, whoever wrote it)."""
        self.served.invalidate(commit.fingerprints)
        self.terms.invalidate(commit.terms())

    def _bulk_written(self) -> None:
        """Drop every cached key and term: a snapshot copy wrote rows without a Commit.

        Without it a lookup answered during the copy stayed cached after it: a key the copy
        then brought was answered 404 on that node until a commit of that very key (found by
        the corrupt chaos scenario: one acknowledged key "lost" on the re-synced node).
        """
        self.served.clear()
        self.terms.clear()

    # -- lookups ---------------------------------------------------------------------------

    async def find(self, query: Query, limit: int) -> list[bytes]:
        """Primary fingerprints matching all terms of `query`, in fingerprint order, at most `limit`."""
        if len(query.terms) == 1:
            found = list(await self._term(query.terms[0], limit))
        else:
            sets = [await self._term(term, self.limits.keyword_scan) for term in query.terms]
            sets.sort(key=len)
            common = set(sets[0]).intersection(*sets[1:])
            found = [fp for fp in sets[0] if fp in common]
            found.sort()
            found = found[:limit]
        if query.exact_uid is not None:
            found = await self._exact(found, query.exact_uid)
        policy = self.policy
        return [fp for fp in found if policy.visible(fp)]

    async def _term(self, term: IndexTerm, limit: int) -> tuple[bytes, ...]:
        cached = self.terms.get(term, limit)
        if cached is not None:
            return cached
        epoch = self.terms.epoch
        found = tuple(await self.store.lookup(term[0], term[1], limit))
        self.terms.put(term, limit, found, epoch)
        return found

    async def _exact(self, fingerprints: list[bytes], uid: str) -> list[bytes]:
        wanted = uid.strip().casefold()
        kept = []
        for fingerprint in fingerprints:
            view = await self.view(fingerprint)
            if view is not None and any(
                u.user_id.decode("utf-8", "replace").strip().casefold() == wanted
                for u in view.user_ids
            ):
                kept.append(fingerprint)
        return kept

    async def served_key(self, fingerprint: bytes) -> ServedKey | None:
        """What is served for a live key (from cache or store), or None if absent, deleted or
        blacklisted."""
        if not self.policy.visible(fingerprint):
            return None
        entry = self.served.get(fingerprint)
        if entry is not None:
            return entry
        epoch = self.served.epoch
        data = await self.store.get(fingerprint)
        if data is None:
            return None
        binary = served_certificate_bytes(data)
        if binary is None:
            return None
        entry = ServedKey(fingerprint, binary)
        self.served.put(entry, epoch)
        return entry

    async def armored(self, entry: ServedKey) -> bytes:
        """The ASCII-armored key of a cached entry (armored once, then kept with it)."""
        if entry.armored is None:
            before = entry.size()
            entry.armored = await self._armor(entry.binary)
            self.served.grew(entry, before)
        return entry.armored

    async def _armor(self, binary: bytes) -> bytes:
        if len(binary) <= _INLINE_ARMOR_BYTES:
            return armor(binary).encode("ascii")
        text = await asyncio.get_running_loop().run_in_executor(None, armor, binary)
        return text.encode("ascii")

    async def get(self, query: Query) -> bytes:
        """One armored keyring of every key matching `query` (at most Limits.get_results)."""
        entries = await self._entries(query, self.limits.get_results)
        if len(entries) == 1:
            return await self.armored(entries[0])
        return await self._armor(b"".join(entry.binary for entry in entries))

    async def _entries(self, query: Query, limit: int) -> list[ServedKey]:
        """The live keys of `query`, at most `limit` and (after the first) Limits.reply_bytes."""
        found = await self.find(query, limit)
        entries: list[ServedKey] = []
        total = 0
        for fingerprint in found:
            entry = await self.served_key(fingerprint)
            if entry is None:
                continue
            total += len(entry.binary)
            if entries and total > self.limits.reply_bytes:
                break
            entries.append(entry)
        if not entries:
            raise NotFound(f"no key found for '{query.text}'")
        return entries

    async def view(self, fingerprint: bytes) -> KeyView | None:
        """The index view of a live key (cached with the key)."""
        entry = await self.served_key(fingerprint)
        if entry is None:
            return None
        return await self._view_of(entry)

    async def _view_of(self, entry: ServedKey) -> KeyView:
        if entry.index is None:
            before = entry.size()
            if len(entry.binary) <= _INLINE_ARMOR_BYTES:
                entry.index = build_view(entry.fingerprint, entry.binary)
            else:
                loop = asyncio.get_running_loop()
                entry.index = await loop.run_in_executor(
                    None, build_view, entry.fingerprint, entry.binary
                )
            self.served.grew(entry, before)
        view: KeyView = entry.index
        return view

    async def index(self, query: Query) -> list[KeyView]:
        """Index views of the keys matching `query` (at most Limits.search_results)."""
        entries = await self._entries(query, self.limits.search_results)
        return [await self._view_of(entry) for entry in entries]

    @property
    def epoch(self) -> tuple[int, int]:
        """Changes whenever a write may have changed any lookup's answer."""
        return (self.served.epoch, self.terms.epoch)

    async def index_mr(
        self, query: Query, render: Callable[[KeyView, float], bytes]
    ) -> tuple[list[bytes], float]:
        """The machine-readable block of each matching key (rendered once, cached), and the
        time until which they stay correct (an expiry flag flips then)."""
        entries = await self._entries(query, self.limits.search_results)
        now = self.clock()
        blocks = []
        valid_until = float("inf")
        for entry in entries:
            if entry.mr is None or now >= entry.extra.get("mr_valid_until", 0.0):
                view = await self._view_of(entry)
                if len(entry.binary) <= _INLINE_ARMOR_BYTES:
                    block = render(view, now)
                else:  # thousands of user IDs to escape: not on the event loop
                    loop = asyncio.get_running_loop()
                    block = await loop.run_in_executor(None, render, view, now)
                before = entry.size()
                entry.mr = block
                entry.extra["mr_valid_until"] = view.changes_after(now)
                self.served.grew(entry, before)
            blocks.append(entry.mr)
            valid_until = min(valid_until, entry.extra["mr_valid_until"])
        return blocks, valid_until

    async def hget(self, digest: bytes) -> bytes:
        """The armored key whose SKS digest is `digest` (16 bytes)."""
        found = await self._term((IndexKind.SKS_DIGEST, digest), 1)
        entries = [e for e in [await self.served_key(fp) for fp in found] if e is not None]
        if not entries:
            raise NotFound(f"no key has SKS digest {digest.hex()}")
        return await self.armored(entries[0])

    async def hashquery(self, digests: Sequence[bytes]) -> list[bytes]:
        """Binary keys for the SKS digests found, up to HASHQUERY_MAX_BYTES in all."""
        keys: list[bytes] = []
        total = 0
        for digest in digests:
            for fingerprint in await self._term((IndexKind.SKS_DIGEST, digest), 1):
                entry = await self.served_key(fingerprint)
                if entry is None:
                    continue
                if total + len(entry.binary) > HASHQUERY_MAX_BYTES:
                    return keys
                keys.append(entry.binary)
                total += len(entry.binary)
        return keys

    async def record(self, fingerprint: bytes) -> KeyRecord | None:
        """The full stored record (tombstones included), for admin and replication use."""
        data = await self.store.get(fingerprint)
        return KeyRecord.decode(data) if data is not None else None

    async def stats(self) -> dict[str, object]:
        keys = await self.store.counter("keys")
        return {
            "software": "meshkp",
            "version": _version(),
            "node_id": self.node_id,
            "total": keys,
            "keys": keys,
            "uptime_s": round(self.clock() - self.started, 1),
            "served_cache": {
                "entries": len(self.served),
                "bytes": self.served.bytes,
                "hits": self.served.hits,
                "misses": self.served.misses,
            },
            "limits": {name: getattr(self.limits, name) for name in self.limits.__slots__},
            "policy": {"version": self.policy.version, "blacklisted": len(self.policy.blacklist)},
        }


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("meshkp")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"
