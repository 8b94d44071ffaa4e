"""The Merkle diff: a pure, message-driven comparison of two trees (no I/O, no clock).

The initiator asks, the responder answers; each message goes one level deeper, so one round
trip descends two levels. A query carries the initiator's child slots of the nodes it wants
compared; the responder compares them with its own and answers, for each differing child,
either its own child slots one level down or, for a bucket or a small subtree, its (id,
digest) entries. The initiator compares those in turn, and so on, only where hashes differ.
The initiator ends holding exactly the ids that differ or that one side lacks; the responder
keeps no state between messages, so a peer cannot make it hold memory.

Cost, for d differing ids: at most d differing nodes per level, each sent once with
`fanout` hashes, so hashes <= depth * d * fanout + 1 (the root), and the entries of at most d
subtrees. With the defaults (fanout 16, depth 4, 16-byte hashes) that is 3 round trips at
any d up to the message budget. Truncated hashes trade a 2**-(8*hash_bytes) chance per
compared subtree of missing a difference for bytes; 16 bytes makes that moot.

    initiator = DiffInitiator(local_tree)
    message = initiator.start()
    while message is not None:
        message = initiator.handle(responder.handle(message))   # the transport goes here
    initiator.result, initiator.stats

(DiffResult and DiffStats live in crdt.diff_session, shared with the compact diff.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from crdt.diff_session import (
    DiffResult,
    DiffSession,
    DiffStats,
    run_in_process,
    validate_session_bounds,
)
from crdt.errors import CrdtConfigError, DiffProtocolError
from crdt.merkle import MerkleTree, Path, Slot, bucket_of
from crdt.merkle_wire import (
    MAX_HASH_BYTES,
    MAX_INLINE_IDS,
    MIN_HASH_BYTES,
    Answer,
    EntriesItem,
    Geometry,
    NodeItem,
    Query,
    WireSlot,
    decode_answer,
    decode_query,
    encode_answer,
    encode_query,
)

# Estimated wire bytes of one (id, digest) entry before it is listed: a 20-32 byte id, a
# 32-byte digest, msgpack headers. Only used to decide between listing and descending.
_ENTRY_ESTIMATE = 64


@dataclass(frozen=True, slots=True)
class DiffConfig:
    """Knobs of the diff; the tree geometry comes from the trees (MerkleConfig)."""

    # Bytes of each node hash on the wire (of 32). Fewer bytes, fewer bytes sent, but a
    # 2**-(8*hash_bytes) chance per compared subtree that a difference hides; 16 is safe even
    # against a client grinding keys for a collision (2**64 work).
    hash_bytes: int = 16
    # List a differing subtree's entries instead of descending when its holder has at most
    # this many ids: one entry (~56 B) costs about three 16-byte hashes with sizes, so a level
    # of `fanout` hashes is only worth it above ~fanout/4 ids.
    inline_ids: int = 4
    # Soft cap on one message, in bytes; items beyond it are deferred to the next round trip.
    # A peer's message over twice this is refused unread. Bounds memory per message; must
    # exceed the largest bucket listing (n / fanout**depth ids of ~56 B).
    max_message_bytes: int = 1 << 20
    # Round trips before the initiator gives up. Within the message budget a diff takes
    # floor(depth/2) + 1; the bound stops a responder that keeps deferring forever.
    max_round_trips: int = 1000

    def validate(self) -> None:
        """Raise CrdtConfigError if a field is out of range."""
        if not MIN_HASH_BYTES <= self.hash_bytes <= MAX_HASH_BYTES:
            raise CrdtConfigError(f"hash_bytes={self.hash_bytes}: must be in [4, 32]")
        if not 0 <= self.inline_ids <= MAX_INLINE_IDS:
            raise CrdtConfigError(f"inline_ids={self.inline_ids}: must be in [0, 1024]")
        validate_session_bounds(self.max_message_bytes, self.max_round_trips)

    @property
    def hard_limit(self) -> int:
        """Messages above this many bytes are refused without decoding."""
        return 2 * self.max_message_bytes


def should_list(
    at_leaf: bool, holder_size: int, other_size: int, inline_ids: int, chunk: int
) -> bool:
    """List the holder's entries of a differing subtree (True) or send its child slots (False).

    A bucket is always listed; so is a subtree the holder has few ids in, and one the other
    side has none in, if the listing fits in `chunk` bytes (every id there differs anyway).
    """
    if at_leaf or holder_size <= inline_ids:
        return True
    return other_size == 0 and holder_size * _ENTRY_ESTIMATE <= chunk


def _wire_slot(slot: Slot, hash_bytes: int) -> WireSlot:
    return (slot.hash[:hash_bytes], slot.size)


def _node_item(tree: MerkleTree, path: Path, hash_bytes: int) -> NodeItem:
    return NodeItem(path, tuple(_wire_slot(slot, hash_bytes) for slot in tree.children(path)))


def _node_item_bytes(geometry: Geometry) -> int:
    return geometry.fanout * (geometry.hash_bytes + 5) + geometry.depth + 8


def _entries_item_bytes(item: EntriesItem) -> int:
    return len(item.path) + 8 + sum(len(i) + len(d) + 4 for i, d in item.entries)


def _check_geometry(tree: MerkleTree, geometry: Geometry) -> None:
    mine = (tree.config.fanout, tree.config.depth)
    if (geometry.fanout, geometry.depth) != mine:
        raise DiffProtocolError(
            f"peer tree has fanout={geometry.fanout} depth={geometry.depth}, ours has "
            f"fanout={mine[0]} depth={mine[1]}: every node of a cluster needs the same geometry"
        )


Piece = NodeItem | EntriesItem


class _AnswerBuilder:
    """Collects a responder's answer within the message budget; defers what does not fit."""

    def __init__(self, geometry: Geometry, config: DiffConfig) -> None:
        self._geometry = geometry
        self._config = config
        self._used = 64  # map keys and headers
        self._nodes: list[NodeItem] = []
        self._entries: list[EntriesItem] = []
        self._deferred_nodes: list[Path] = []
        self._deferred_wants: list[Path] = []

    def offer(self, path: Path, is_want: bool, produce: Callable[[], list[Piece]]) -> None:
        """Add what `produce` yields for one query item, or defer the item (and all after it)."""
        deferred = self._deferred_wants if is_want else self._deferred_nodes
        if self._deferred_nodes or self._deferred_wants:
            deferred.append(path)
            return
        pieces = produce()
        size = sum(
            _entries_item_bytes(p)
            if isinstance(p, EntriesItem)
            else _node_item_bytes(self._geometry)
            for p in pieces
        )
        if (self._nodes or self._entries) and self._used + size > self._config.max_message_bytes:
            deferred.append(path)
            return
        if size > self._config.hard_limit:
            raise DiffProtocolError(
                f"listing under path {bytes(path).hex() or 'root'} needs {size} bytes, over the "
                f"{self._config.hard_limit}-byte message limit: raise the tree depth"
            )
        self._used += size
        for piece in pieces:
            if isinstance(piece, EntriesItem):
                self._entries.append(piece)
            else:
                self._nodes.append(piece)

    def answer(self) -> Answer:
        """The answer collected so far."""
        return Answer(
            False,
            tuple(self._nodes),
            tuple(self._entries),
            tuple(self._deferred_nodes),
            tuple(self._deferred_wants),
        )


class DiffResponder:
    """Answers diff queries against one tree. Keeps no state between messages."""

    def __init__(self, tree: MerkleTree, config: DiffConfig | None = None) -> None:
        self.config = config or DiffConfig()
        self.config.validate()
        self.tree = tree
        self.stats = DiffStats()  # cumulative over every query answered

    def handle(self, data: bytes) -> bytes:
        """The answer to one query; raises DiffProtocolError on a bad query, changing nothing."""
        query = decode_query(data, self.config.hard_limit)
        _check_geometry(self.tree, query.geometry)
        answer = self._answer(query)
        reply = encode_answer(answer)
        stats = self.stats
        stats.answered(data, reply)
        stats.hashes += sum(item.sent_hashes for item in (*query.nodes, *answer.nodes))
        stats.hashes += query.root is not None
        stats.entries += sum(len(item.entries) for item in answer.entries)
        return reply

    def _answer(self, query: Query) -> Answer:
        geometry = query.geometry
        root = self.tree.slot(())
        if query.root is not None and _wire_slot(root, geometry.hash_bytes) == query.root:
            return Answer(same_root=True)
        builder = _AnswerBuilder(geometry, self.config)
        for item in query.nodes:
            builder.offer(item.path, False, partial(self._compare, item, geometry))
        for path in query.wants:
            builder.offer(path, True, partial(self._want, path, geometry))
        return builder.answer()

    def _describe(self, path: Path, mine: int, theirs: int, geometry: Geometry) -> Piece:
        at_leaf = len(path) == geometry.depth
        chunk = self.config.max_message_bytes // 4
        if should_list(at_leaf, mine, theirs, geometry.inline_ids, chunk):
            return EntriesItem(path, tuple(self.tree.entries(path)) if mine else ())
        return _node_item(self.tree, path, geometry.hash_bytes)

    def _compare(self, item: NodeItem, geometry: Geometry) -> list[Piece]:
        hb = geometry.hash_bytes
        pieces: list[Piece] = []
        for index, slot in enumerate(self.tree.children(item.path)):
            theirs = item.slots[index]
            if _wire_slot(slot, hb) != theirs:
                child = (*item.path, index)
                pieces.append(self._describe(child, slot.size, theirs[1], geometry))
        return pieces

    def _want(self, path: Path, geometry: Geometry) -> list[Piece]:
        size = self.tree.slot(path).size
        at_leaf = len(path) == geometry.depth
        if at_leaf or size * _ENTRY_ESTIMATE <= self.config.max_message_bytes // 4:
            return [EntriesItem(path, tuple(self.tree.entries(path)) if size else ())]
        return [_node_item(self.tree, path, geometry.hash_bytes)]


class DiffInitiator(DiffSession):
    """Drives one diff of `tree` (local) against a responder's tree (remote)."""

    def __init__(self, tree: MerkleTree, config: DiffConfig | None = None) -> None:
        super().__init__(tree)
        self.config = config or DiffConfig()
        self.config.validate()
        self.geometry = Geometry(
            tree.config.fanout, tree.config.depth, self.config.hash_bytes, self.config.inline_ids
        )
        self._queue: deque[tuple[bool, Path]] = deque()  # (is_want, path)
        self._asked_nodes: set[Path] = set()
        self._asked_wants: set[Path] = set()
        self._asked_root = False

    def _first_query(self) -> bytes:
        self._queue.append((len(self.tree) == 0, ()))
        return self._next_query(with_root=True)

    def handle(self, data: bytes) -> bytes | None:
        """Take the responder's answer; return the next query, or None when done."""
        self._check_outstanding()
        answer = decode_answer(data, self.geometry, self.config.hard_limit)
        self._check(answer)
        stats = self.stats
        stats.round_trips += 1
        stats.messages += 1
        stats.bytes_received += len(data)
        stats.hashes += sum(item.sent_hashes for item in answer.nodes)
        stats.entries += sum(len(item.entries) for item in answer.entries)
        if answer.same_root:
            self._queue.clear()
        for node in answer.nodes:
            self._compare(node)
        for item in answer.entries:
            self._reconcile(item)
        self._queue.extend((False, path) for path in answer.deferred_nodes)
        self._queue.extend((True, path) for path in answer.deferred_wants)
        if not self._queue:
            self._done = True
            return None
        if stats.round_trips >= self.config.max_round_trips:
            raise DiffProtocolError(
                f"diff unfinished after max_round_trips={self.config.max_round_trips}"
            )
        return self._next_query(with_root=False)

    # -- building queries ------------------------------------------------------------------
    def _next_query(self, *, with_root: bool) -> bytes:
        geometry = self.geometry
        budget = self.config.max_message_bytes
        used = 64
        nodes: list[NodeItem] = []
        wants: list[Path] = []
        while self._queue:
            is_want, path = self._queue[0]
            size = len(path) + 4 if is_want else _node_item_bytes(geometry)
            if (nodes or wants) and used + size > budget:
                break
            self._queue.popleft()
            used += size
            if is_want:
                wants.append(path)
            else:
                nodes.append(_node_item(self.tree, path, geometry.hash_bytes))
        root = _wire_slot(self.tree.slot(()), geometry.hash_bytes) if with_root else None
        data = encode_query(Query(geometry, root, tuple(nodes), tuple(wants)))
        self._asked_nodes = {item.path for item in nodes}
        self._asked_wants = set(wants)
        self._asked_root = with_root
        stats = self.stats
        stats.messages += 1
        stats.bytes_sent += len(data)
        stats.hashes += sum(item.sent_hashes for item in nodes) + (1 if with_root else 0)
        return data

    # -- checking and using answers --------------------------------------------------------
    def _check(self, answer: Answer) -> None:
        """Refuse answers about paths this query did not ask for, or that make no progress."""
        if answer.same_root:
            if not self._asked_root or answer.nodes or answer.entries:
                raise DiffProtocolError("same_root is only a bare answer to the first query")
            return
        asked_nodes, asked_wants = self._asked_nodes, self._asked_wants
        seen: set[Path] = set()
        answered_wants: set[Path] = set()
        for path in [item.path for item in answer.nodes] + [item.path for item in answer.entries]:
            if path in seen:
                raise DiffProtocolError(f"answer covers path {bytes(path).hex()} twice")
            seen.add(path)
            if path in asked_wants:
                answered_wants.add(path)
            elif not path or path[:-1] not in asked_nodes:
                raise DiffProtocolError(f"answer covers path {bytes(path).hex()}, never asked")
        for path in answer.deferred_nodes:
            if path not in asked_nodes:
                raise DiffProtocolError(f"answer defers node {bytes(path).hex()}, never asked")
        for path in answer.deferred_wants:
            if path not in asked_wants or path in answered_wants:
                raise DiffProtocolError(f"answer defers listing {bytes(path).hex()} wrongly")
            answered_wants.add(path)
        if answered_wants != asked_wants:
            raise DiffProtocolError("answer leaves a requested listing unanswered")
        if (answer.deferred_nodes or answer.deferred_wants) and not seen:
            raise DiffProtocolError("answer defers everything: no progress")
        fanout, depth = self.geometry.fanout, self.geometry.depth
        for item in answer.entries:
            for item_id, _ in item.entries:
                if bucket_of(item_id, fanout, depth)[: len(item.path)] != item.path:
                    raise DiffProtocolError(
                        f"id {item_id.hex()} does not belong under path {bytes(item.path).hex()}"
                    )

    def _compare(self, node: NodeItem) -> None:
        hb = self.geometry.hash_bytes
        depth = self.geometry.depth
        chunk = self.config.max_message_bytes // 4
        for index, mine in enumerate(self.tree.children(node.path)):
            theirs = node.slots[index]
            if _wire_slot(mine, hb) == theirs:
                continue
            child = (*node.path, index)
            if theirs[1] == 0:
                self._local_only.update(self.tree.entries(child))
            elif should_list(
                len(child) == depth, theirs[1], mine.size, self.geometry.inline_ids, chunk
            ):
                self._queue.append((True, child))
            else:
                self._queue.append((False, child))

    def _reconcile(self, item: EntriesItem) -> None:
        remote = dict(item.entries)
        if len(remote) != len(item.entries):
            raise DiffProtocolError(f"listing {bytes(item.path).hex()} repeats an id")
        local = dict(self.tree.entries(item.path))
        for item_id, digest in local.items():
            theirs = remote.get(item_id)
            if theirs is None:
                self._local_only[item_id] = digest
            elif theirs != digest:
                self._differing[item_id] = (digest, theirs)
        for item_id, digest in remote.items():
            if item_id not in local:
                self._remote_only[item_id] = digest


def diff_trees(
    local: MerkleTree, remote: MerkleTree, config: DiffConfig | None = None
) -> tuple[DiffResult, DiffStats]:
    """Run a whole diff in-process (tests, benchmarks): the initiator's result and stats."""
    return run_in_process(DiffInitiator(local, config), DiffResponder(remote, config))
