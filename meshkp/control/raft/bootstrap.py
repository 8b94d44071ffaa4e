"""The founding log of a new cluster: its first node as sole voter, and the seed policy.

Only the first node of a cluster bootstraps, once, with empty storage (as hashicorp/raft's
BootstrapCluster): it persists the returned state and starts from it, elects itself at its
first tick and commits the seed with its no-op. Every other node starts empty and receives
the log (or a snapshot) once the leader has added it as a learner. Two nodes that both
bootstrap found two clusters; the driver bootstraps only when no mesh peer is configured.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshkp.control.raft.membership import ChangeOp, ConfigChange, Configuration, MembershipChange
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored

BOOTSTRAP_TERM = 1


def bootstrap(node_id: str, seed_commands: Sequence[bytes] = (), *, actor: str = "bootstrap",
              hlc: int = 0, cluster_id: str = "") -> Restored:
    """The state to persist and start the founding node from (entries at term 1).

    `cluster_id` names the new cluster for good (the node draws it at random): members of
    another cluster are refused by it (membership.Generation)."""
    founding = ConfigChange(MembershipChange(ChangeOp.BOOTSTRAP, node_id),
                            Configuration(voters=frozenset({node_id}), cluster=cluster_id),
                            actor, node_id, hlc)
    entries = [Entry(1, BOOTSTRAP_TERM, EntryKind.CONFIG, founding.encode())]
    for data in seed_commands:
        entries.append(Entry(len(entries) + 1, BOOTSTRAP_TERM, EntryKind.COMMAND, data))
    return Restored(hard_state=HardState(BOOTSTRAP_TERM, "", 0), entries=tuple(entries))
