"""The compact diff (protocol v2): crdt.merkle_diff's descent over a fanout-4 view with short
salted hashes, short digests in listings, and paths left out of answers.

Same shape as v1: the initiator sends its child hashes of the nodes it wants compared; the
stateless responder answers, per differing child, its own child hashes one level down
(NODE), its entries (LIST: when it holds at most `inline_ids` there, or at the deepest
level), or that it holds nothing there (EMPTY); and so on, only where hashes differ. Each
message goes one virtual level deeper, so one round trip descends two, i.e. one stored level
of fanout 16: the round trips of v1 plus the sub-bucket levels (crdt.recon_view).

Cost for d scattered differences of n ids, per difference: about log4(n/d) differing nodes of
4 hashes each, where v1 sends log16(n/d) nodes of 16 hashes each of 4x the bytes; then one
listing of ~1 entry (the id and a short digest). With 4-byte hashes that is ~8x less than
v1 (bench/merkle_diff.py compares both in one run). A short hash or digest that collides
hides that difference for this round only: the salt is new every session
(crdt.recon_view), so the next round finds it (tests/unit/crdt/test_recon.py).

The result names the remote side's digests by their salted short form (only which ids
differ is used: the records themselves are fetched and merged by the CRDT join).
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from crdt.errors import CrdtConfigError, DiffProtocolError
from crdt.merkle import HASH_BYTES, MerkleTree
from crdt.merkle_diff import DiffResult, DiffStats
from crdt.recon_view import ARITY, QuadView, VPath, salted, vpath_of
from crdt.recon_wire import (
    EMPTY,
    FULL_HASHES,
    LIST,
    MAX_INLINE_IDS,
    MAX_LISTING,
    MIN_HASH_BYTES,
    MIN_SALT_BYTES,
    NODE,
    SAME,
    SHORT_HASHES,
    Reader,
    ReconAnswer,
    ReconGeometry,
    ReconQuery,
    decode_answer,
    decode_query,
    encode_answer,
    encode_path,
    encode_query,
    pack_hashes,
    pack_listing,
)

# Estimated bytes of one listed entry (id length, a 20-byte fingerprint, a short digest):
# decides between listing a subtree one side lacks and descending it.
_ENTRY_ESTIMATE = 26
# What the initiator asks about a path: its child hashes compared, with short hashes or whole
# ones (after a collision), or the responder's entries listed.
_NODE, _WANT = 0, 1
# Node items and wants in one query. A diff of d differences asks about ~d at a time (a
# far-behind one gives up first); the bound keeps one query of a hostile peer to ~0.2 s of
# the responder's CPU (each item costs 4 subtree hashes), where 2 MiB of 7-byte items would
# be 300,000.
MAX_QUERY_ITEMS = 16_384


def hash_size(g: ReconGeometry, flags: int) -> int:
    """Bytes of the hashes of a node item with these path flags, and of NODE answers to it."""
    if flags & FULL_HASHES:
        return HASH_BYTES
    return g.short_hash_bytes if flags & SHORT_HASHES else g.hash_bytes


def _new_salt() -> bytes:
    return secrets.token_bytes(MIN_SALT_BYTES)


@dataclass(frozen=True, slots=True)
class ReconConfig:
    """Knobs of the compact diff; the tree geometry comes from the trees."""

    # Bytes of each subtree hash on the wire. A collision hides a difference for one round
    # with chance 2**-(8*hash_bytes) per differing subtree (the salt changes every round):
    # 4 bytes, once in 4 billion; each byte less saves ~1/4 of the descent.
    hash_bytes: int = 4
    # Hashes where differences are sparse (a node had one differing child of four, or the
    # level has 4 nodes or more per difference estimated so far: most of a diff's levels). A
    # collision of one differing child there leaves a node known to differ with no differing
    # child, which the initiator sees and asks again with whole hashes; only two differing
    # children, one of them colliding, go unseen (for that round).
    short_hash_bytes: int = 2
    # Bytes of each digest in a listing: the same trade-off, per differing id.
    digest_bytes: int = 4
    # List a differing subtree whose holder has at most this many ids instead of descending:
    # a listed entry (~25 B) costs about what 1.5 levels of descent do, and listing at 2
    # saves the last round trips (5 instead of 8 at d = 10 of 100,000).
    inline_ids: int = 2
    # Soft cap on one message; a peer's message over twice this is refused unread.
    max_message_bytes: int = 1 << 20
    # Round trips before the initiator gives up (a responder deferring forever).
    max_round_trips: int = 1000
    # Where the initiator's per-session salts come from (tests pass a fixed one).
    new_salt: Callable[[], bytes] = field(default=_new_salt, compare=False)

    def validate(self) -> None:
        """Raise CrdtConfigError if a field is out of range."""
        for name in ("hash_bytes", "short_hash_bytes", "digest_bytes"):
            value = getattr(self, name)
            if not MIN_HASH_BYTES <= value <= 32:
                raise CrdtConfigError(f"{name}={value}: must be in [{MIN_HASH_BYTES}, 32]")
        if not 0 <= self.inline_ids <= MAX_INLINE_IDS:
            raise CrdtConfigError(f"inline_ids={self.inline_ids}: must be in [0, {MAX_INLINE_IDS}]")
        if self.max_message_bytes < 4096:
            raise CrdtConfigError(f"max_message_bytes={self.max_message_bytes}: must be >= 4096")
        if self.max_round_trips < 1:
            raise CrdtConfigError(f"max_round_trips={self.max_round_trips}: must be >= 1")

    @property
    def hard_limit(self) -> int:
        """Messages above this many bytes are refused without decoding."""
        return 2 * self.max_message_bytes


def _wire(view: QuadView, vpath: VPath, salt: bytes, size: int) -> bytes | None:
    slot = view.slot(vpath)
    return salted(slot.hash, salt, size) if slot.size else None


def _child_wires(view: QuadView, vpath: VPath, salt: bytes, size: int) -> tuple[bytes | None, ...]:
    return tuple(_wire(view, (*vpath, c), salt, size) for c in range(ARITY))


def _listing(view: QuadView, vpath: VPath, g: ReconGeometry) -> bytes:
    entries = view.entries(vpath)
    if len(entries) > MAX_LISTING:
        raise DiffProtocolError(f"{len(entries)} ids under one path: raise the tree depth")
    return pack_listing([(i, salted(d, g.salt, g.digest_bytes)) for i, d in entries])


class ReconResponder:
    """Answers compact-diff queries against one tree; keeps no state between messages."""

    def __init__(self, tree: MerkleTree, config: ReconConfig | None = None) -> None:
        self.config = config or ReconConfig()
        self.config.validate()
        self.tree = tree
        self.stats = DiffStats()

    def handle(self, data: bytes) -> bytes:
        """The answer to one query; DiffProtocolError on a bad query, changing nothing."""
        query = decode_query(data, self.config.hard_limit)
        g = query.geometry
        if (g.fanout, g.depth) != (self.tree.config.fanout, self.tree.config.depth):
            raise DiffProtocolError(
                f"peer tree has fanout={g.fanout} depth={g.depth}, ours has "
                f"fanout={self.tree.config.fanout} depth={self.tree.config.depth}: every node "
                "of a cluster needs the same geometry")
        view = QuadView(self.tree)
        if query.root is not None and query.root == self.tree.root():
            answer = ReconAnswer(True, 0, 0, b"")
        else:
            answer = self._answer(query, view)
        reply = encode_answer(answer)
        stats = self.stats
        stats.round_trips += 1
        stats.messages += 2
        stats.bytes_received += len(data)
        stats.bytes_sent += len(reply)
        return reply

    def _describe(self, view: QuadView, vpath: VPath, theirs_empty: bool,
                  g: ReconGeometry, size: int) -> bytes:
        """NODE or LIST for a subtree that differs and that this side holds ids in."""
        held = view.slot(vpath).size
        chunk = self.config.max_message_bytes // 4
        if (len(vpath) == view.max_v or held <= g.inline_ids
                or (theirs_empty and held * _ENTRY_ESTIMATE <= chunk)):
            return bytes([LIST]) + _listing(view, vpath, g)
        return bytes([NODE]) + pack_hashes(_child_wires(view, vpath, g.salt, size))

    def _answer(self, query: ReconQuery, view: QuadView) -> ReconAnswer:
        g = query.geometry
        budget = self.config.max_message_bytes
        parts: list[bytes] = []
        used = 64
        answered = 0
        nodes = Reader(query.nodes, "recon query nodes")
        while nodes.at < len(query.nodes):
            if answered >= MAX_QUERY_ITEMS:
                raise DiffProtocolError(f"query holds more than {MAX_QUERY_ITEMS} items")
            vpath, flags = nodes.flagged_path(view.max_v - 1)
            size = hash_size(g, flags)
            theirs = nodes.hashes(size)
            states = 0
            payload: list[bytes] = []
            for c in range(ARITY):
                child = (*vpath, c)
                mine = _wire(view, child, g.salt, size)
                if mine == theirs[c]:
                    state = SAME
                elif mine is None:
                    state = EMPTY
                else:
                    described = self._describe(view, child, theirs[c] is None, g, size)
                    state = described[0]
                    payload.append(described[1:])
                states |= state << (2 * (ARITY - 1 - c))
            piece = bytes([states]) + b"".join(payload)
            if answered and used + len(piece) > budget:
                return ReconAnswer(False, answered, 0, b"".join(parts))
            used += len(piece)
            parts.append(piece)
            answered += 1
        wants = Reader(query.wants, "recon query wants")
        answered_wants = 0
        while wants.at < len(query.wants):
            if answered + answered_wants >= MAX_QUERY_ITEMS:
                raise DiffProtocolError(f"query holds more than {MAX_QUERY_ITEMS} items")
            vpath = wants.path(view.max_v)
            if view.slot(vpath).size == 0:
                piece = bytes([EMPTY])
            else:
                piece = self._describe(view, vpath, True, g, g.hash_bytes)
            if (answered or answered_wants) and used + len(piece) > budget:
                break
            used += len(piece)
            parts.append(piece)
            answered_wants += 1
        return ReconAnswer(False, answered, answered_wants, b"".join(parts))


class ReconInitiator:
    """Drives one compact diff of `tree` (local) against a responder's tree (remote)."""

    def __init__(self, tree: MerkleTree, config: ReconConfig | None = None,
                 give_up_above: int | None = None) -> None:
        self.config = config or ReconConfig()
        self.config.validate()
        self.tree = tree
        # Stop descending once the difference is estimated above this many ids (a far-behind
        # node copies the peer's store instead): `gave_up` then says the result is partial.
        self.give_up_above = give_up_above
        self.gave_up = False
        self._differing_at: dict[int, int] = {}  # virtual level -> differing nodes found
        self.view = QuadView(tree)  # raises CrdtConfigError for a fanout not a power of 4
        c = self.config
        self.geometry = ReconGeometry(tree.config.fanout, tree.config.depth, c.hash_bytes,
                                      c.short_hash_bytes, c.digest_bytes, c.inline_ids,
                                      c.new_salt())
        self.stats = DiffStats()
        self._queue: deque[tuple[int, VPath, int]] = deque()  # (_NODE/_WANT, path, flags)
        self._asked_nodes: list[tuple[VPath, tuple[bytes | None, ...], int]] = []
        # Nodes known to differ whose 4 children all compared equal: a short hash collided
        # (or the peer's tree changed meanwhile); each is asked again with whole hashes.
        self.collisions = 0
        self._asked_wants: list[VPath] = []
        self._asked_root = False
        self._started = False
        self._done = False
        self._local_only: dict[bytes, bytes] = {}
        self._remote_only: dict[bytes, bytes] = {}
        self._differing: dict[bytes, tuple[bytes, bytes]] = {}

    @property
    def done(self) -> bool:
        return self._done

    @property
    def result(self) -> DiffResult:
        """The differences found (remote digests in their short salted form); once `done`."""
        if not self._done:
            raise DiffProtocolError("the diff has not finished: keep exchanging messages")
        return DiffResult(self._local_only, self._remote_only, self._differing)

    def start(self) -> bytes:
        """The first query: my full root and my root's children (a want if I am empty)."""
        if self._started:
            raise DiffProtocolError("start() called twice on one ReconInitiator")
        self._started = True
        self._queue.append((_WANT if len(self.tree) == 0 else _NODE, (), 0))
        return self._next_query(with_root=True)

    def _next_query(self, *, with_root: bool) -> bytes:
        g = self.geometry
        budget = self.config.max_message_bytes
        used = 128
        nodes: list[bytes] = []
        wants: list[bytes] = []
        self._asked_nodes, self._asked_wants = [], []
        while self._queue:
            kind, vpath, flags = self._queue[0]
            if kind == _WANT:
                piece = encode_path(vpath)
            else:
                wires = _child_wires(self.view, vpath, g.salt, hash_size(g, flags))
                piece = encode_path(vpath, flags) + pack_hashes(wires)
            if (nodes or wants) and (used + len(piece) > budget
                                     or len(nodes) + len(wants) >= MAX_QUERY_ITEMS):
                break
            self._queue.popleft()
            used += len(piece)
            if kind == _WANT:
                wants.append(piece)
                self._asked_wants.append(vpath)
            else:
                nodes.append(piece)
                self._asked_nodes.append((vpath, wires, flags))
        root = self.tree.root() if with_root else None
        data = encode_query(ReconQuery(g, root, b"".join(nodes), b"".join(wants)))
        self._asked_root = with_root
        self.stats.messages += 1
        self.stats.bytes_sent += len(data)
        return data

    def handle(self, data: bytes) -> bytes | None:
        """Take the responder's answer; return the next query, or None when done."""
        if not self._started or self._done:
            raise DiffProtocolError("no query is outstanding")
        answer = decode_answer(data, self.config.hard_limit)
        stats = self.stats
        stats.round_trips += 1
        stats.messages += 1
        stats.bytes_received += len(data)
        if answer.same_root:
            if not self._asked_root or answer.answered or answer.answered_wants or answer.body:
                raise DiffProtocolError("same_root is only a bare answer to the first query")
            self._queue.clear()
        else:
            self._take(answer)
        if self.give_up_above is not None and self.estimate() > self.give_up_above:
            self.gave_up = True
            self._queue.clear()
        if not self._queue:
            self._done = True
            return None
        if stats.round_trips >= self.config.max_round_trips:
            raise DiffProtocolError(
                f"diff unfinished after max_round_trips={self.config.max_round_trips}")
        return self._next_query(with_root=False)

    def estimate(self) -> int:
        """Differing ids estimated from the differing nodes found per level so far.

        With d differences scattered over 4**v nodes, a node differs with chance
        1 - exp(-d / 4**v), so k differing nodes of N say d ~ -N ln(1 - k/N); a level where
        all differ says only d >= N ln N. Levels below 4,096 nodes are complete early in a
        diff; a level not wholly asked yet only lowers the estimate (fewer snapshots).
        """
        best = 0.0
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
        g = self.geometry
        for vpath, mine, flags in nodes[:k]:
            states = body.u8()
            if not states and not flags & FULL_HASHES:
                self.collisions += 1
                self._queue.append((_NODE, vpath, FULL_HASHES))
            for c in range(ARITY):
                state = (states >> (2 * (ARITY - 1 - c))) & 3
                child = (*vpath, c)
                if state == SAME:
                    continue
                self._found(len(child))
                if state == EMPTY:
                    if mine[c] is None:
                        raise DiffProtocolError("answer says a subtree we both lack differs")
                    self._local_only.update(self.view.entries(child))
                else:
                    self._payload(body, state, child, hash_size(g, flags))
        for vpath in wants[:kw]:
            state = body.u8()
            if state == EMPTY:
                self._local_only.update(self.view.entries(vpath))
            elif state in (NODE, LIST):
                self._payload(body, state, vpath, g.hash_bytes)
            else:
                raise DiffProtocolError(f"answer to a listing has state {state}")
        body.end()
        for vpath in reversed(wants[kw:]):
            self._queue.appendleft((_WANT, vpath, 0))
        for vpath, _, flags in reversed(nodes[k:]):
            self._queue.appendleft((_NODE, vpath, flags))

    def _payload(self, body: Reader, state: int, vpath: VPath, size: int) -> None:
        g = self.geometry
        if state == LIST:
            self._reconcile(vpath, body.listing(g.digest_bytes))
            return
        if len(vpath) >= self.view.max_v:
            raise DiffProtocolError("answer descends below the deepest level")
        remote = body.hashes(size)
        mine = _child_wires(self.view, vpath, g.salt, size)
        self.stats.hashes += sum(1 for h in remote if h is not None)
        differing = [c for c in range(ARITY) if mine[c] != remote[c]]
        self._found(len(vpath) + 1, len(differing))
        # Where differences are sparse (one differing child of four here, or a level of at
        # least 4 nodes per difference estimated so far), the children's children are
        # compared with short hashes: a node there rarely has two differing children, so a
        # collision mostly shows (a node known to differ whose children all compare equal)
        # and is asked again with whole hashes.
        sparse = ARITY ** (len(vpath) + 2) >= 4 * max(1, self.estimate())
        flags = SHORT_HASHES if len(differing) == 1 or sparse else 0
        for c in differing:
            child = (*vpath, c)
            if remote[c] is None:
                self._local_only.update(self.view.entries(child))
            else:
                small = (mine[c] is None or len(child) == self.view.max_v
                         or self.view.slot(child).size <= g.inline_ids)
                self._queue.append((_WANT, child, 0) if small else (_NODE, child, flags))

    def _reconcile(self, vpath: VPath, entries: list[tuple[bytes, bytes]]) -> None:
        remote = dict(entries)
        if len(remote) != len(entries):
            raise DiffProtocolError(f"listing {encode_path(vpath).hex()} repeats an id")
        self.stats.entries += len(entries)
        for item_id in remote:
            if vpath_of(item_id, len(vpath)) != vpath:
                raise DiffProtocolError(
                    f"id {item_id.hex()} does not belong under path {encode_path(vpath).hex()}")
        g = self.geometry
        local = dict(self.view.entries(vpath))
        for item_id, digest in local.items():
            theirs = remote.get(item_id)
            if theirs is None:
                self._local_only[item_id] = digest
            elif theirs != salted(digest, g.salt, g.digest_bytes):
                self._differing[item_id] = (digest, theirs)
        for item_id, short in remote.items():
            if item_id not in local:
                self._remote_only[item_id] = short


def recon_trees(local: MerkleTree, remote: MerkleTree, config: ReconConfig | None = None
                ) -> tuple[DiffResult, DiffStats]:
    """Run a whole compact diff in-process (tests, benchmarks): the initiator's result, stats."""
    initiator = ReconInitiator(local, config)
    responder = ReconResponder(remote, config)
    message: bytes | None = initiator.start()
    while message is not None:
        message = initiator.handle(responder.handle(message))
    return initiator.result, initiator.stats
