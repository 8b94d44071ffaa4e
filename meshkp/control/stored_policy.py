"""The policy a stopped node had applied, read from its control store (for offline commands).

`meshkp load` writes into a data directory while its node is stopped; it must hold the keys to
the cluster's policy as the node would (the limits, and the blacklist's refusals), or an
offline load could bring in what every online upload is refused. The state is rebuilt as the
node rebuilds it at start: the stored snapshot, then the stored entries up to the stored commit
index. Entries after that index are left out: they may never commit (the node learns at start
whether they did), and the policy they carry is not in force anywhere yet.
"""

from __future__ import annotations

from meshkp.control.policy.apply import apply
from meshkp.control.policy.snapshot import decode_state
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.types import Restored
from meshkp.control.storage import RaftStorage
from meshkp.errors import StoreError, WireError
from meshkp.store.protocol import Store


def stored_policy(store: Store) -> PolicyState | None:
    """The policy committed in `store`'s control state; None if it has no control store."""
    storage = RaftStorage(store)
    if storage.is_empty():
        return None
    restored = storage.load()
    return replayed(restored, restored.hard_state.commit)


def replayed(restored: Restored, through: int) -> PolicyState:
    """The policy state of `restored`'s snapshot and its entries up to index `through`."""
    try:
        state = decode_state(restored.snapshot.data) if restored.snapshot else PolicyState()
    except WireError as exc:
        raise StoreError(f"the stored control snapshot is corrupt: {exc}") from exc
    for entry in restored.entries:
        if state.token.index < entry.index <= through:
            state = apply(state, entry)
    return state
