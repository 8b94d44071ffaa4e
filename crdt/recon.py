"""The compact diff's initiator (protocol v3, and v2 with older peers): crdt.merkle_diff's
descent over a fanout-4 view with short salted hashes, offers, and a closing check.

Same shape as v1: the initiator sends its child hashes of the nodes it wants compared; the
stateless responder (crdt.recon_responder) answers, per differing child, its own child hashes
one level down (NODE), its entries (LIST: when it holds at most `inline_ids` there, or at the
deepest level), or that it holds nothing there (EMPTY); and so on, only where hashes differ.
Each message goes one virtual level deeper, so one round trip descends two, i.e. one stored
level of fanout 16: the round trips of v1 plus the sub-bucket levels (crdt.recon_view).

What v3 (crdt.recon_body, crdt.recon_wire) adds to v2, each for bytes per difference at small
d, where v2 paid ~130-150 B: binary framing; paths grouped by level; 1-byte hashes on chains
of single differences; no mask byte where none is needed; the root's children compared by
2-byte hashes. At the bottom, where the initiator holds at most `inline_ids` ids under a
differing node, it offers them (3-byte salted id hashes) and the responder answers which it
holds (3-byte digest hashes) and lists only the ids the initiator lacks, where v2 listed every
id there in full (~25 B each: the neighbours of a difference, or the id whose state changed).
A differing child the initiator marked small, the responder lists in short form and the
initiator asks by position for the ids it lacks. Short forms that show no difference in a
subtree known to differ (a collision) are asked again in full. Last, the closing check
(crdt.recon_check) proves the trees agree outside the listed subtrees, and when it fails the
initiator descends once more with a fresh salt and no 1-byte hashes.

Cost for d scattered differences of n ids, per difference: about log4(n/d) differing nodes of
4 hashes each, where v1 sends log16(n/d) nodes of 16 hashes each of 4x the bytes; then one
offer of ~1.5 ids. A collision the closing check cannot see (a digest hash inside a listed
subtree, once in 16 million) hides that difference for this round only: the salt is new every
session (crdt.recon_view), so the next round finds it (tests/unit/crdt/test_crdt_recon.py).
Round trips stay O(log n) (one more for the check or a second descent at most), each
carrying all of the level's O(d) items.

The result names the remote side's digests by their salted short form, or b"" where only the
id came (only which ids differ is used: the records are fetched and merged by the CRDT join).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

from crdt.diff_session import DiffResult, DiffStats, run_in_process
from crdt.errors import DiffProtocolError
from crdt.merkle import MerkleTree
from crdt.recon_body import (
    ALL_CHILDREN,
    EMPTY,
    FULL_HASHES,
    IDS_ONLY,
    INDEXED,
    LIST,
    NODE,
    PLAIN_WANT,
    SAME,
    SHORT_HASHES,
    SHORT_LIST_AT_MOST,
    SHORT_WANT,
    TINY_HASHES,
    Reader,
    encode_path,
    group_key,
    pack_grouped,
    pack_hashes,
    pack_indices,
    pack_offer,
    pack_unmasked,
    unmasked_fits,
)
from crdt.recon_check import MAX_CHECK_PATHS, check_hash
from crdt.recon_config import (
    MAX_QUERY_ITEMS,
    ReconConfig,
    child_wires,
    hash_size,
    root_wire,
    short_id,
)
from crdt.recon_listings import NODE_ITEM, WANT_ITEM, Asked, ListingReader
from crdt.recon_responder import ReconResponder
from crdt.recon_view import ARITY, QuadView, VPath
from crdt.recon_wire import (
    RECON_VERSION,
    V2,
    V3,
    ReconAnswer,
    ReconGeometry,
    ReconQuery,
    decode_answer,
    encode_query,
)

_NODE, _WANT = NODE_ITEM, WANT_ITEM
# One-byte hashes only while the difference is estimated at most this many ids, and only on
# a node whose subtree holds 1/16 of a difference or less on average: there a node with two
# differing children (which a collision of one hides until the closing check) is rare, so a
# check fails in ~1 diff of 1,000 per difference. Above it the figures are under 100 B per
# difference without them (docs/benchmarks.md).
TINY_AT_MOST_ESTIMATE = 256
TINY_SPARSENESS = 16
# The closing check is asked for with the last query when its node items hold at most this
# many of my ids each (their differing children are then listed, not descended, so the
# check's cut is known after the answer and it needs no round trip of its own).
CHECK_WITH_IDS = 8


def _retry_flags(flags: int) -> int:
    """Hashes a node is asked again with after a collision: 2 bytes after 1, else whole."""
    return SHORT_HASHES if flags == TINY_HASHES else FULL_HASHES


class ReconInitiator(ListingReader):
    """Drives one compact diff of `tree` (local) against a responder's tree (remote)."""

    def __init__(self, tree: MerkleTree, config: ReconConfig | None = None,
                 give_up_above: int | None = None, version: int = RECON_VERSION) -> None:
        super().__init__(tree)
        self.config = config or ReconConfig()
        self.config.validate()
        if version not in (V2, V3):
            raise DiffProtocolError(f"compact diff version {version}: this code speaks 2 and 3")
        # Stop descending once the difference is estimated above this many ids (a far-behind
        # node copies the peer's store instead): `gave_up` then says the result is partial.
        self.give_up_above = give_up_above
        self.gave_up = False
        self._differing_at: dict[int, int] = {}  # virtual level -> differing nodes found
        self.view = QuadView(tree)  # raises CrdtConfigError for a fanout not a power of 4
        c = self.config
        self.geometry = ReconGeometry(tree.config.fanout, tree.config.depth, c.hash_bytes,
                                      c.short_hash_bytes, c.digest_bytes, c.inline_ids,
                                      c.new_salt(), version)
        self._queue: deque[Asked] = deque()
        self._asked_nodes: list[tuple[VPath, tuple[bytes | None, ...], int, int]] = []
        # Nodes known to differ whose 4 children all compared equal, and short listings of a
        # subtree known to differ that show no difference: a short hash collided (or the
        # peer's tree changed meanwhile); each is asked again with whole hashes or in full.
        self.collisions = 0
        self._asked_wants: list[Asked] = []
        self._asked_root = False
        # Subtrees resolved by a listing or found empty on one side: cut out of the closing
        # check (crdt.recon_check). verified: None until a check ran (v2, or too many paths).
        self._resolved: set[VPath] = set()
        self._checking = False  # the outstanding query asks for the closing check
        self._check_held: bool | None = None  # whether it held (None: not yet known)
        self._redone = False
        self.verified: bool | None = None

    def _first_query(self) -> bytes:
        """My root and my root's children (a want if I am empty)."""
        # v3 compares the root's children and grandchildren by short hashes: a collision
        # there goes unseen only among several differing children, which the closing check
        # sees (once in ~16,000 diffs at d = 1,000); it saves ~40 bytes a diff.
        root_flags = SHORT_HASHES if self.v3 else 0
        everything = IDS_ONLY if self.v3 else PLAIN_WANT  # I am empty: every id is new here
        self._queue.append((_WANT, (), everything, ()) if len(self.tree) == 0
                           else (_NODE, (), root_flags, ()))
        return self._next_query(with_root=True)

    def _small(self, vpath: VPath) -> int:
        """The 4-bit mask of my children of `vpath` holding 1..inline_ids ids (v3)."""
        if not self.v3:
            return 0
        mask = 0
        for c in range(ARITY):
            if 0 < self.view.slot((*vpath, c)).size <= self.geometry.inline_ids:
                mask |= 1 << (ARITY - 1 - c)
        return mask

    def _next_query(self, *, with_root: bool) -> bytes:
        g = self.geometry
        budget = self.config.max_message_bytes
        used = 128
        # (flags, path, what follows the path) of each item, and what was asked
        nodes: list[tuple[int, VPath, bytes]] = []
        wants: list[tuple[int, VPath, bytes]] = []
        asked_nodes: list[tuple[VPath, tuple[bytes | None, ...], int, int]] = []
        asked_wants: list[Asked] = []
        while self._queue:
            kind, vpath, flags, indices = self._queue[0]
            small = wire_flags = 0
            wires: tuple[bytes | None, ...] = ()
            if kind == _WANT:
                flags, rest = self._want_rest(vpath, flags, indices)
            else:
                wires = child_wires(self.view, vpath, g.salt, hash_size(g, flags))
                small = self._small(vpath)
                if self.v3 and not small and unmasked_fits(wires):
                    wire_flags, rest = flags | ALL_CHILDREN, pack_unmasked(wires)
                else:
                    wire_flags, rest = flags, pack_hashes(wires, small)
            size = 1 + len(vpath) // 4 + len(rest)
            if (nodes or wants) and (used + size > budget
                                     or len(nodes) + len(wants) >= MAX_QUERY_ITEMS):
                break
            self._queue.popleft()
            used += size
            if kind == _WANT:
                wants.append((flags, vpath, rest))
                asked_wants.append((kind, vpath, flags, indices))
            else:
                nodes.append((wire_flags, vpath, rest))
                asked_nodes.append((vpath, wires, flags, small))
        if self.v3:  # grouped by level and flags, and asked in that order
            node_order = sorted(range(len(nodes)), key=lambda i: group_key(*nodes[i][:2]))
            want_order = sorted(range(len(wants)), key=lambda i: group_key(*wants[i][:2]))
            self._asked_nodes = [asked_nodes[i] for i in node_order]
            self._asked_wants = [asked_wants[i] for i in want_order]
            node_blob = pack_grouped([nodes[i] for i in node_order])
            want_blob = pack_grouped([wants[i] for i in want_order])
        else:
            self._asked_nodes, self._asked_wants = asked_nodes, asked_wants
            node_blob = b"".join(encode_path(p, f) + r for f, p, r in nodes)
            want_blob = b"".join(encode_path(p, f) + r for f, p, r in wants)
        root = root_wire(self.tree.root(), g) if with_root else None
        query = ReconQuery(g, root, node_blob, want_blob)
        if self._may_check(with_root, nodes):
            # Nothing left to ask but (probably) the last listings: the responder adds the
            # closing check's hash over its tree to the answer, cutting out what is resolved
            # already and what the answer resolves (crdt.recon_check).
            cut = sorted(self._resolved, key=lambda p: (len(p), p))
            query = dataclasses.replace(query, cut=pack_grouped([(0, p, b"") for p in cut]))
        self._checking = query.cut is not None
        data = encode_query(query)
        self._asked_root = with_root
        self.stats.messages += 1
        self.stats.bytes_sent += len(data)
        return data

    def _want_rest(self, vpath: VPath, flags: int, indices: tuple[int, ...]
                   ) -> tuple[int, bytes]:
        """A want's flags and what follows its path: an offer names my ids there by their
        short hashes, unless two of them share one (then a plain want)."""
        if flags == INDEXED:
            return flags, pack_indices(list(indices))
        if flags == SHORT_WANT:
            offered = self._offered(vpath)
            if offered is None:
                return PLAIN_WANT, b""
            return flags, pack_offer(offered)
        return flags, b""

    def _offered(self, vpath: VPath) -> list[bytes] | None:
        ids = sorted(i for i, _ in self.view.entries(vpath))
        hashes = [short_id(i, self.geometry.salt) for i in ids]
        if len(set(hashes)) < len(hashes) or len(hashes) > SHORT_LIST_AT_MOST:
            return None
        return hashes

    def _may_check(self, with_root: bool, nodes: list[tuple[int, VPath, bytes]]) -> bool:
        """Whether to ask for the closing check with this query: everything left is in it,
        and its node items are near the bottom (so their answers likely only list)."""
        return (self.v3 and not with_root and not self._queue
                and self._check_held is None and self.verified is None and not self.gave_up
                and len(self._resolved) <= MAX_CHECK_PATHS
                and all(self.view.slot(vpath).size <= CHECK_WITH_IDS for _, vpath, _ in nodes))

    def _take_check(self, answer: ReconAnswer) -> None:
        """After an answer to a query that asked for the check: it holds if my tree cut the
        same way hashes the same, unless the answer left work outside the cut (a subtree
        it descended instead of listing, or a deferred item): then it is asked again."""
        if answer.check is None:
            return
        left_outside = any(kind == _NODE or vpath not in self._resolved
                           for kind, vpath, _, _ in self._queue)
        if not left_outside:
            mine = check_hash(self.view, self._resolved, self.geometry.salt)
            self._check_held = mine == answer.check

    def handle(self, data: bytes) -> bytes | None:
        """Take the responder's answer; return the next query, or None when done."""
        self._check_outstanding()
        answer = decode_answer(data, self.config.hard_limit, self.geometry.version)
        stats = self.stats
        stats.round_trips += 1
        stats.messages += 1
        stats.bytes_received += len(data)
        if answer.check is not None and not self._checking:
            raise DiffProtocolError("an answer with a check hash no query asked for")
        if self._checking:
            self._checking = False
            if answer.same_root:
                raise DiffProtocolError("same_root is only a bare answer to the first query")
            if self._asked_nodes or self._asked_wants:
                self._take(answer)
            elif answer.answered or answer.answered_wants or answer.body:
                raise DiffProtocolError("the answer to a closing check carries items")
            self._take_check(answer)
        elif answer.same_root:
            if not self._asked_root or answer.answered or answer.answered_wants or answer.body:
                raise DiffProtocolError("same_root is only a bare answer to the first query")
            self._queue.clear()
            self.verified = True
        else:
            self._take(answer)
        if self.give_up_above is not None and self.estimate() > self.give_up_above:
            self.gave_up = True
            self._queue.clear()
        if not self._queue and not self._closed():
            self._queue.append((_NODE, (), 0, ()))  # one more descent, with a fresh salt
        if not self._queue:
            if self._check_held is None and self._may_check(False, []):
                return self._next_query(with_root=False)  # a check alone
            self._done = True
            return None
        if stats.round_trips >= self.config.max_round_trips:
            raise DiffProtocolError(
                f"diff unfinished after max_round_trips={self.config.max_round_trips}")
        return self._next_query(with_root=False)

    def _closed(self) -> bool:
        """Whether the diff may end once its queue is empty: v2, a check held, or a second
        failed one; after a first failed check (a collision hid a difference) it descends
        once more with a fresh salt and no one-byte hashes, adding to what it found."""
        if not self.v3 or self.gave_up or self.verified is not None:
            return True
        if self._check_held is None:
            return True  # the check is still to be sent (or there are too many paths)
        if self._check_held or self._redone:
            self.verified = self._check_held
            return True
        self._redone = True
        self._check_held = None
        self.geometry = dataclasses.replace(self.geometry, salt=self.config.new_salt())
        return False

    def estimate(self) -> int:
        """Differing ids estimated from the differing nodes found per level so far.

        With d differences scattered over 4**v nodes, a node differs with chance
        1 - exp(-d / 4**v), so k differing nodes of N say d ~ -N ln(1 - k/N); a level where
        all differ says only d >= N ln N. Levels below 4,096 nodes are complete early in a
        diff; a level not wholly asked yet only lowers the estimate (fewer snapshots). The
        differences found so far bound it from below (v3 lists a subtree the initiator holds
        few ids in at once, where v2 descended it level by level).
        """
        best = float(len(self._local_only) + len(self._remote_only) + len(self._differing))
        for level, found in self._differing_at.items():
            nodes = ARITY ** level
            if nodes > 4096:
                continue
            best = max(best, nodes * math.log(nodes) if found >= nodes
                       else -nodes * math.log(1 - found / nodes))
        return int(best)

    def _found(self, level: int, count: int = 1) -> None:
        self._differing_at[level] = self._differing_at.get(level, 0) + count

    def _take(self, answer: ReconAnswer) -> None:
        nodes, wants = self._asked_nodes, self._asked_wants
        k, kw = answer.answered, answer.answered_wants
        if k > len(nodes) or kw > len(wants) or (k < len(nodes) and kw) or not k + kw:
            raise DiffProtocolError(
                f"answer covers {k} of {len(nodes)} nodes and {kw} of {len(wants)} listings: "
                "not a prefix, or no progress")
        body = Reader(answer.body, "recon answer")
        for vpath, mine, flags, small in nodes[:k]:
            states = body.u8()
            if not states and flags != FULL_HASHES:
                self.collisions += 1
                self._queue.append((_NODE, vpath, _retry_flags(flags), ()))
            for c in range(ARITY):
                state = (states >> (2 * (ARITY - 1 - c))) & 3
                child = (*vpath, c)
                if state == SAME:
                    continue
                self._found(len(child))
                if state == EMPTY:
                    if mine[c] is None:
                        raise DiffProtocolError("answer says a subtree we both lack differs")
                    self._resolved.add(child)
                    self._local_only.update(self.view.entries(child))
                elif state == LIST:
                    self._resolved.add(child)
                    self._listed(body, child, empty_here=mine[c] is None,
                                 small_here=bool(small & (1 << (ARITY - 1 - c))))
                else:
                    self._descend(body, child, flags)
        for _, vpath, flags, _ in wants[:kw]:
            state = body.u8()
            if state == EMPTY:
                self._resolved.add(vpath)
                if flags != INDEXED:
                    self._local_only.update(self.view.entries(vpath))
            elif state == NODE and flags != INDEXED:
                self._descend(body, vpath, 0)
            elif state == LIST:
                self._resolved.add(vpath)
                self._listed_want(body, vpath, flags)
            else:
                raise DiffProtocolError(f"answer to a listing has state {state}")
        body.end()
        for asked in reversed(wants[kw:]):
            self._queue.appendleft(asked)
        for vpath, _, flags, _ in reversed(nodes[k:]):
            self._queue.appendleft((_NODE, vpath, flags, ()))

    def _descend(self, body: Reader, vpath: VPath, item_flags: int) -> None:
        """A NODE payload (hashes as the item asked): compare its child hashes with mine;
        queue what differs."""
        g = self.geometry
        if len(vpath) >= self.view.max_v:
            raise DiffProtocolError("answer descends below the deepest level")
        size = hash_size(g, item_flags)
        remote = body.payload_hashes(size, g.version)
        mine = child_wires(self.view, vpath, g.salt, size)
        self.stats.hashes += sum(1 for h in remote if h is not None)
        differing = [c for c in range(ARITY) if mine[c] != remote[c]]
        if not differing and item_flags != FULL_HASHES:
            # Known to differ (the responder saw it), yet its children compare equal.
            self.collisions += 1
            self._queue.append((_NODE, vpath, _retry_flags(item_flags), ()))
            return
        self._found(len(vpath) + 1, len(differing))
        # Where differences are sparse (one differing child of four here, or a level of at
        # least 4 nodes per difference estimated so far), the children's children are
        # compared with short hashes: a node there rarely has two differing children, so a
        # collision mostly shows (a node known to differ whose children all compare equal)
        # and is asked again with whole hashes.
        estimate = max(1, self.estimate())
        sparse = ARITY ** (len(vpath) + 2) >= 4 * estimate
        tiny = (self.v3 and not self._redone and len(differing) == 1
                and estimate <= TINY_AT_MOST_ESTIMATE
                and ARITY ** (len(vpath) + 1) >= TINY_SPARSENESS * estimate)
        flags = (TINY_HASHES if tiny else SHORT_HASHES if len(differing) == 1 or sparse
                 else 0)
        for c in differing:
            child = (*vpath, c)
            if remote[c] is None:
                self._resolved.add(child)
                self._local_only.update(self.view.entries(child))
            elif mine[c] is None:
                self._queue.append((_WANT, child, IDS_ONLY if self.v3 else PLAIN_WANT, ()))
            elif len(child) == self.view.max_v or self.view.slot(child).size <= g.inline_ids:
                self._queue.append((_WANT, child, SHORT_WANT if self.v3 else PLAIN_WANT, ()))
            else:
                self._queue.append((_NODE, child, flags, ()))

def recon_trees(local: MerkleTree, remote: MerkleTree, config: ReconConfig | None = None,
                version: int = RECON_VERSION) -> tuple[DiffResult, DiffStats]:
    """Run a whole compact diff in-process (tests, benchmarks): the initiator's result, stats."""
    return run_in_process(ReconInitiator(local, config, version=version),
                          ReconResponder(remote, config))


__all__ = ["ReconConfig", "ReconInitiator", "ReconResponder", "recon_trees"]
