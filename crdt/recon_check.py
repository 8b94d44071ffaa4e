"""The closing check of a v3 compact diff: both trees agree outside the subtrees it listed.

Short hashes hide a difference now and then: a node with two differing children one of which
collides shows only the other, and nothing in the descent tells. So once the descent is done
the initiator sends, with its last query, the paths of every subtree it resolved by a
listing (or found empty on one side); the responder answers a salted 8-byte hash of its tree
with those subtrees and the ones this answer lists cut out, and the initiator compares it
with the same hash of its own tree. Equal, the diff found every difference outside the
listed subtrees (inside them, ids are compared whole, digests by their salted short form).
Different, a collision hid one (or a tree changed meanwhile), and the initiator descends once
more without the shortest hashes (crdt.recon).

Cost: ~3 bytes per resolved subtree and 8 bytes, in the last round trip (or one of its own
when that one still descends); the responder's CPU is bounded by MAX_CHECK_PATHS, each path
costing 4 subtree hashes per level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from crdt.recon_view import ARITY, QuadView, VPath, salted
from crdt.recon_wire import V3_ROOT_BYTES

# Paths one check may cut out, named by the query and resolved by the answer each: the
# subtree hashes above them are computed afresh, ~0.2 ms a path at the deepest level (0.45 s
# for 2,048 random deepest paths at load 5 on the 2-core test machine), so a hostile query
# costs a responder's reader thread ~1 s at most. A diff resolving more (d above ~1,500) goes
# unchecked, as v2 was, its misses left to the next round.
MAX_CHECK_PATHS = 2048
_CUT = b"\x00"  # stands for a subtree cut out: one byte, never a 32-byte hash
_TAG = b"C"


def check_hash(view: QuadView, paths: Iterable[VPath], salt: bytes) -> bytes:
    """Salted hash of the tree at `view` with the subtrees at `paths` cut out."""
    cut = set(paths)
    above = {p[:i] for p in cut for i in range(len(p))}

    def walk(vpath: VPath) -> bytes:
        if vpath in cut:
            return _CUT
        if vpath not in above:
            return view.slot(vpath).hash
        return hashlib.sha256(_TAG + b"".join(walk((*vpath, c)) for c in range(ARITY))).digest()

    return salted(walk(()), salt, V3_ROOT_BYTES)
