"""How the compact diff's initiator (crdt.recon) reads listings: full ones, short ones, and
the replies to its offers; each compared with its own entries under the listed path.

Every id a listing names must belong under its path (a peer cannot make us sync keys it
made up for another subtree); a subtree known to differ whose short form shows no difference
(a collision) is asked for again in full.
"""

from __future__ import annotations

from collections import deque

from crdt.diff_session import DiffSession
from crdt.errors import DiffProtocolError
from crdt.recon_body import (
    IDS_ONLY,
    INDEXED,
    MAX_LISTING,
    MAX_V3_LISTING,
    PLAIN_WANT,
    SHORT_WANT,
    Reader,
    encode_path,
    is_short_listing,
)
from crdt.recon_config import short_digest, short_id
from crdt.recon_view import QuadView, VPath, salted, vpath_of
from crdt.recon_wire import V3, ReconGeometry

# What the initiator asks about a path: its child hashes compared, with short hashes or whole
# ones (after a collision), or the responder's entries listed.
NODE_ITEM, WANT_ITEM = 0, 1
Asked = tuple[int, VPath, int, tuple[int, ...]]  # (NODE_ITEM/WANT_ITEM, path, flags, indices)


class ListingReader(DiffSession):
    """The listing half of ReconInitiator; it holds the fields below."""

    view: QuadView
    geometry: ReconGeometry
    collisions: int
    _queue: deque[Asked]

    @property
    def v3(self) -> bool:
        return self.geometry.version == V3

    def _listed(self, body: Reader, vpath: VPath, empty_here: bool, small_here: bool) -> None:
        """A LIST payload for a differing child of a node item."""
        if self.v3 and small_here and is_short_listing(body):
            self._match_short(vpath, body.short_listing())
        else:
            digests = not (self.v3 and empty_here)
            self._reconcile(vpath, self._full(body, digests), digests)

    def _listed_want(self, body: Reader, vpath: VPath, flags: int) -> None:
        """A LIST answer to a want, read as the kind of want asked for."""
        if flags == SHORT_WANT and is_short_listing(body):
            self._match_offer(vpath, body)
        elif flags in (INDEXED, IDS_ONLY):
            self._reconcile(vpath, self._full(body, digests=False), False,
                            complete=flags != INDEXED)
        else:
            self._reconcile(vpath, self._full(body, digests=True), True)

    def _full(self, body: Reader, digests: bool) -> list[tuple[bytes, bytes]]:
        max_count = MAX_V3_LISTING if self.v3 else MAX_LISTING
        return body.listing(self.geometry.digest_bytes if digests else 0, max_count)

    def _check_under(self, vpath: VPath, item_ids: list[bytes]) -> None:
        for item_id in item_ids:
            if vpath_of(item_id, len(vpath)) != vpath:
                raise DiffProtocolError(
                    f"id {item_id.hex()} does not belong under path {encode_path(vpath).hex()}")

    def _match_short(self, vpath: VPath, shorts: list[tuple[bytes, bytes]]) -> None:
        """Match a short listing of a subtree known to differ against my ids there."""
        salt = self.geometry.salt
        local = dict(self.view.entries(vpath))
        by_hash = {short_id(i, salt): i for i in local}
        remote_hashes = [h for h, _ in shorts]
        if len(by_hash) < len(local) or len(set(remote_hashes)) < len(remote_hashes):
            self.collisions += 1  # two ids share a 3-byte hash: ask for the whole listing
            self._queue.append((WANT_ITEM, vpath, PLAIN_WANT, ()))
            return
        self.stats.entries += len(shorts)
        matched: set[bytes] = set()
        unknown: list[int] = []
        differing: dict[bytes, tuple[bytes, bytes]] = {}
        for index, (id_hash, digest_hash) in enumerate(shorts):
            item_id = by_hash.get(id_hash)
            if item_id is None:
                unknown.append(index)
                continue
            matched.add(item_id)
            if short_digest(local[item_id], salt) != digest_hash:
                differing[item_id] = (local[item_id], digest_hash)
        missing = {i: d for i, d in local.items() if i not in matched}
        if not (unknown or differing or missing):
            self.collisions += 1
            self._queue.append((WANT_ITEM, vpath, PLAIN_WANT, ()))
            return
        self._differing.update(differing)
        self._local_only.update(missing)
        if unknown:
            self._queue.append((WANT_ITEM, vpath, INDEXED, tuple(unknown)))

    def _match_offer(self, vpath: VPath, body: Reader) -> None:
        """An offer reply: which of my ids there the responder holds, and its others."""
        salt = self.geometry.salt
        local = dict(self.view.entries(vpath))
        ids = sorted(local)
        held, others = body.offer_reply(len(ids))
        self._check_under(vpath, others)
        self.stats.entries += len(ids) + len(others)
        found = False
        for item_id, digest_hash in zip(ids, held, strict=True):
            if digest_hash is None:
                self._local_only[item_id] = local[item_id]
                found = True
            elif short_digest(local[item_id], salt) != digest_hash:
                self._differing[item_id] = (local[item_id], digest_hash)
                found = True
        for item_id in others:
            found = True
            if item_id in local:  # its short hash collided with another of mine
                self._differing[item_id] = (local[item_id], b"")
            else:
                self._remote_only[item_id] = b""
        if not found:
            self.collisions += 1
            self._queue.append((WANT_ITEM, vpath, PLAIN_WANT, ()))

    def _reconcile(self, vpath: VPath, entries: list[tuple[bytes, bytes]], digests: bool,
                   complete: bool = True) -> None:
        """Compare a listing with my entries there (`complete`: it lists all of theirs)."""
        remote = dict(entries)
        if len(remote) != len(entries):
            raise DiffProtocolError(f"listing {encode_path(vpath).hex()} repeats an id")
        self._check_under(vpath, list(remote))
        self.stats.entries += len(entries)
        g = self.geometry
        local = dict(self.view.entries(vpath))
        for item_id, digest in local.items():
            theirs = remote.get(item_id)
            if theirs is None:
                if complete:
                    self._local_only[item_id] = digest
            elif not digests or theirs != salted(digest, g.salt, g.digest_bytes):
                self._differing[item_id] = (digest, theirs)
        for item_id, short in remote.items():
            if item_id not in local:
                self._remote_only[item_id] = short
