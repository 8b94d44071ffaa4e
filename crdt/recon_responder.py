"""The responder side of the compact diff (crdt.recon), versions 2 and 3: stateless.

Each query is answered from the tree as it is now and nothing is kept, so a peer cannot make
it hold memory; what one query may cost is bounded (MAX_QUERY_ITEMS items, the message
budget, listings of at most MAX_SHORT_LISTING ids for an indexed want). The answer speaks
the query's version: a v3 node answers a v2 initiator as a v2 node would.
"""

from __future__ import annotations

import dataclasses

from crdt.diff_session import DiffStats
from crdt.errors import DiffProtocolError
from crdt.merkle import MerkleTree
from crdt.recon_body import (
    ALL_CHILDREN,
    EMPTY,
    IDS_ONLY,
    INDEXED,
    LIST,
    MAX_SHORT_LISTING,
    MAX_V3_LISTING,
    NODE,
    SAME,
    SHORT_LIST_AT_MOST,
    SHORT_WANT,
    Reader,
    pack_hashes,
    pack_listing,
    pack_offer_reply,
    pack_payload_hashes,
)
from crdt.recon_check import MAX_CHECK_PATHS, check_hash
from crdt.recon_config import (
    ENTRY_ESTIMATE,
    MAX_QUERY_ITEMS,
    ReconConfig,
    child_wires,
    full_listing,
    hash_size,
    root_wire,
    short_digest,
    short_id,
    short_listing,
    sorted_entries,
    wire_hash,
)
from crdt.recon_view import ARITY, QuadView, VPath
from crdt.recon_wire import V3, ReconAnswer, ReconGeometry, ReconQuery, decode_query, encode_answer


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
        if query.root is not None and query.root == root_wire(self.tree.root(), g):
            answer = ReconAnswer(True, 0, 0, b"", g.version)
        else:
            answer, resolved = self._answer(query, view)
            if query.cut is not None:
                answer = dataclasses.replace(answer, check=self._check(query.cut, resolved,
                                                                        view, g))
        reply = encode_answer(answer)
        self.stats.answered(data, reply)
        return reply

    @staticmethod
    def _check(blob: bytes, resolved: list[VPath], view: QuadView, g: ReconGeometry
               ) -> bytes | None:
        """The closing check's hash of my tree (crdt.recon_check), cutting out the paths the
        query names and those this answer resolves; None above MAX_CHECK_PATHS of the latter
        (the initiator asks again with nothing else)."""
        cut: list[VPath] = []
        paths = Reader(blob, "recon check paths", grouped=True)
        while paths.more():
            if len(cut) >= MAX_CHECK_PATHS:
                raise DiffProtocolError(f"a check cutting out more than {MAX_CHECK_PATHS} paths")
            cut.append(paths.path(view.max_v))
        if len(resolved) > MAX_CHECK_PATHS:
            return None
        return check_hash(view, [*cut, *resolved], g.salt)

    def _describe(self, view: QuadView, vpath: VPath, theirs_empty: bool, theirs_small: bool,
                  g: ReconGeometry, size: int) -> bytes:
        """NODE or LIST for a subtree that differs and that this side holds ids in."""
        held = view.slot(vpath).size
        v3 = g.version == V3
        if v3 and theirs_small and held <= SHORT_LIST_AT_MOST:
            return bytes([LIST]) + short_listing(view, vpath, g)
        # A subtree they lack, or (v3) hold at most inline_ids in: every id or all but a few
        # of mine there differ, so listing them costs no more than the descent would.
        few_there = theirs_empty or (v3 and theirs_small)
        if (len(vpath) == view.max_v or held <= g.inline_ids
                or (few_there and held * ENTRY_ESTIMATE <= self.config.max_message_bytes // 4)):
            return bytes([LIST]) + full_listing(view, vpath, g, digests=not (v3 and theirs_empty))
        return bytes([NODE]) + pack_payload_hashes(child_wires(view, vpath, g.salt, size), size,
                                                   g.version)

    def _answer(self, query: ReconQuery, view: QuadView) -> tuple[ReconAnswer, list[VPath]]:
        """The answer, and the paths it resolves (listed, or empty on one side)."""
        g = query.geometry
        v3 = g.version == V3
        budget = self.config.max_message_bytes
        resolved: list[VPath] = []
        parts: list[bytes] = []
        used = 64
        answered = 0
        nodes = Reader(query.nodes, "recon query nodes", grouped=v3)
        while nodes.more():
            if answered >= MAX_QUERY_ITEMS:
                raise DiffProtocolError(f"query holds more than {MAX_QUERY_ITEMS} items")
            vpath, flags = nodes.flagged_path(view.max_v - 1, allow_both=v3,
                                              extra=ALL_CHILDREN if v3 else 0)
            size = hash_size(g, flags)
            theirs, small = nodes.hashes(size, allow_small=v3,
                                         all_children=bool(flags & ALL_CHILDREN))
            states = 0
            payload: list[bytes] = []
            settled: list[VPath] = []
            for c in range(ARITY):
                child = (*vpath, c)
                mine = wire_hash(view, child, g.salt, size)
                if mine == theirs[c]:
                    state = SAME
                elif mine is None:
                    state = EMPTY
                else:
                    described = self._describe(view, child, theirs[c] is None,
                                               bool(small & (1 << (ARITY - 1 - c))), g, size)
                    state = described[0]
                    payload.append(described[1:])
                if state in (EMPTY, LIST):
                    settled.append(child)
                states |= state << (2 * (ARITY - 1 - c))
            piece = bytes([states]) + b"".join(payload)
            if answered and used + len(piece) > budget:
                return ReconAnswer(False, answered, 0, b"".join(parts), g.version), resolved
            used += len(piece)
            parts.append(piece)
            resolved.extend(settled)
            answered += 1
        nodes.end()
        wants = Reader(query.wants, "recon query wants", grouped=v3)
        answered_wants = 0
        while wants.more():
            if answered + answered_wants >= MAX_QUERY_ITEMS:
                raise DiffProtocolError(f"query holds more than {MAX_QUERY_ITEMS} items")
            vpath, piece = (self._want(view, wants, g) if v3
                            else self._want_v2(view, wants, g))
            if (answered or answered_wants) and used + len(piece) > budget:
                break
            used += len(piece)
            parts.append(piece)
            if piece[0] in (EMPTY, LIST):
                resolved.append(vpath)
            answered_wants += 1
        return (ReconAnswer(False, answered, answered_wants, b"".join(parts), g.version),
                resolved)

    def _want_v2(self, view: QuadView, wants: Reader, g: ReconGeometry) -> tuple[VPath, bytes]:
        vpath = wants.path(view.max_v)
        if view.slot(vpath).size == 0:
            return vpath, bytes([EMPTY])
        return vpath, self._describe(view, vpath, True, False, g, g.hash_bytes)

    def _want(self, view: QuadView, wants: Reader, g: ReconGeometry) -> tuple[VPath, bytes]:
        vpath, kind, indices, offered = wants.want(view.max_v)
        return vpath, self._want_piece(view, vpath, kind, indices, offered, g)

    def _want_piece(self, view: QuadView, vpath: VPath, kind: int, indices: list[int],
                    offered: list[bytes], g: ReconGeometry) -> bytes:
        held = view.slot(vpath).size
        if held == 0:
            return bytes([EMPTY])
        if kind == INDEXED:
            # Positions in the short listing this side sent: only small subtrees have one.
            if held > MAX_SHORT_LISTING:
                raise DiffProtocolError(f"an indexed want under a path of {held} ids")
            entries = sorted_entries(view, vpath)
            return bytes([LIST]) + pack_listing([(entries[i][0], b"") for i in indices
                                                 if i < len(entries)], MAX_V3_LISTING)
        if kind == SHORT_WANT and held <= SHORT_LIST_AT_MOST:
            reply = self._offer_reply(view, vpath, offered, g)
            if reply is not None:
                return bytes([LIST]) + reply
        if len(vpath) == view.max_v or held * ENTRY_ESTIMATE <= self.config.max_message_bytes // 4:
            return bytes([LIST]) + full_listing(view, vpath, g, digests=kind != IDS_ONLY)
        return bytes([NODE]) + pack_hashes(child_wires(view, vpath, g.salt, g.hash_bytes))

    @staticmethod
    def _offer_reply(view: QuadView, vpath: VPath, offered: list[bytes], g: ReconGeometry
                     ) -> bytes | None:
        """Which offered ids I hold (their digest hashes) and my other ids; None if two of
        my ids there share a short hash (a full listing then)."""
        mine = {short_id(i, g.salt): (i, d) for i, d in sorted_entries(view, vpath)}
        if len(mine) < view.slot(vpath).size:
            return None
        held = [short_digest(mine[h][1], g.salt) if h in mine else None for h in offered]
        asked = set(offered)
        others = [i for h, (i, _) in sorted(mine.items(), key=lambda kv: kv[1]) if h not in asked]
        return pack_offer_reply(held, others)

