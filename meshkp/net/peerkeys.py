"""PeerKeys: which Ed25519 public key belongs to which node id, as this node has learnt it.

A derived node id (the default) is the first 16 hex digits of SHA-256 of the node's public key
(meshkp/net/identity.py), so a key proves the id by itself: any frame or statement signed by
that key may carry that id, nothing to remember. A configured id (`--node-id NAME`) proves
nothing by itself, so the first key seen with it is *pinned* (trust on first use, through the
join push-pull or the first frame of that node) and every later key for the same id is refused.

Both kinds are remembered, so that a statement naming its signer only by id (a Suspect, a Dead,
a Leave) can be checked against the key learnt from that node's own signed Alive.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from meshkp.net.identity import derive_node_id

log = logging.getLogger("meshkp.net.identity")

# Ids remembered with their key. Far above any planned mesh (the member table is bounded well
# below it, swim.max_members). Derived ids past the bound are simply forgotten (they prove
# themselves again with the next frame); pins are never evicted, so new configured ids are
# refused once the table is full of pins: an attacker cannot evict a pin to re-claim its id.
MAX_KNOWN_IDS = 8192


class PeerKeys:
    """The id -> public key directory of one node, shared by all its transports."""

    def __init__(self, max_ids: int = MAX_KNOWN_IDS) -> None:
        self._max_ids = max_ids
        self._keys: OrderedDict[str, bytes] = OrderedDict()
        self._pinned: set[str] = set()
        self.mismatches = 0  # claims refused: an id with a key that is not its own
        self.refused_full = 0  # configured ids refused because the pin table is full
        self._own = ""  # this node's id (own())

    def __len__(self) -> int:
        return len(self._keys)

    def key_of(self, node_id: str) -> bytes | None:
        """The key learnt for node_id, or None."""
        return self._keys.get(node_id)

    def bind(self, node_id: str, public_key: bytes) -> bool:
        """True if `public_key` may speak for `node_id` (learning the pair); False otherwise."""
        if derive_node_id(public_key) == node_id:
            self._remember(node_id, public_key)
            return True
        known = self._keys.get(node_id)
        if known is not None:
            if known == public_key:
                return True
            self.mismatches += 1
            return False
        if len(self._pinned) >= self._max_ids:
            self.refused_full += 1
            return False
        self._pinned.add(node_id)
        self._remember(node_id, public_key)
        log.info("event=peer_key_pinned node=%r key=%s", node_id, public_key[:8].hex())
        return True

    def reset(self, node_id: str, public_key: bytes = b"") -> bytes | None:
        """Forget the key of `node_id` (an operator's decision: it has a new identity), and pin
        `public_key` for it if given; the key forgotten, or None. Our own id is never reset."""
        if node_id == self._own:
            return None
        old = self._keys.pop(node_id, None)
        self._pinned.discard(node_id)
        if public_key:
            self._pinned.add(node_id)
            self._remember(node_id, public_key)
        return old

    def own(self, node_id: str, public_key: bytes) -> None:
        """Pin our own id to our own key: nobody else may claim it, and no reset undoes it."""
        self._own = node_id
        self.bind(node_id, public_key)

    def _remember(self, node_id: str, public_key: bytes) -> None:
        self._keys[node_id] = public_key
        self._keys.move_to_end(node_id)
        while len(self._keys) > self._max_ids:
            for victim in self._keys:
                if victim not in self._pinned:
                    del self._keys[victim]
                    break
            else:
                return
