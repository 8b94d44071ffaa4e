"""Forced recovery: a new configuration for a cluster that lost a majority of its voters for good.

Raft cannot change its voters without a majority of them, so when most voters are gone for
good an operator forces a new configuration onto one survivor, offline (`meshkp recover`, as
etcd's --force-new-cluster and Consul's peers.json). The survivor keeps its whole log, and one
CONFIG entry (ChangeOp.RECOVER) is appended after it:
- it names the new voters (by default the survivor alone); every other member of the last
  configuration stays, as a learner, so a survivor not named catches up from the new leader
  and the autopilot promotes it again; the ids removed for good stay removed;
- it is written at a term RECOVERY_TERM_GAP above any term this node has seen, and the hard
  state moves to it. The new leader's log ends at that term, so any voter of the old
  configuration that comes back grants it its vote, accepts its entries and takes the new
  configuration from its log; none can win an election against it (the up-to-date check) nor
  outlast its term. The gap covers terms of elections this node never heard of: with PreVote a
  minority's term does not move, so the dead voters cannot have gone far past ours;
- it starts the cluster's next generation (membership.Generation: the epoch is bumped), and
  every control message carries the newest generation its sender knows: a member of the old
  one is refused by every member of the new one (a counted, logged drop, and a Refused reply
  that tells it), and a node told so stops campaigning until the new configuration reaches its
  log. So lost voters that come back, even together, cannot lead the recovered members;
- the hard state's commit covers it, so at start every entry of the log is applied (the policy
  state is kept, entries this node held but never knew committed included) and the entry's
  audit record names the action.

A node whose committed log forked from its leader's (a voter lost and back after a recovery, whose
log held entries the survivor never had: RaftCore.forked_at) cannot take the leader's log, and
only an operator can decide to drop its history: `meshkp recover --rejoin` (check_rejoin here,
RaftStorage.reset_for_rejoin) forgets its log and snapshot but keeps its term and vote, so it
never votes twice in one term, and its key data. It starts as a joiner, and its leader sends it
the log or a snapshot.

What it cannot do (docs/control-plane.md "Recovering from the loss of a majority"): entries
only the lost voters held are gone, and two survivors recovered separately make two clusters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshkp.control.raft.membership import (
    MAX_NODE_ID_CHARS,
    ChangeOp,
    ConfigChange,
    Configuration,
    MembershipChange,
)
from meshkp.control.raft.types import Entry, EntryKind, HardState, Restored
from meshkp.errors import InvalidCommand

# How far above the highest term this node has seen the recovery entry is written.
RECOVERY_TERM_GAP = 100
RECOVERY_ACTOR = "meshkp recover"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What to append (entry) and store (hard_state) on the survivor, and what it replaces."""

    entry: Entry
    hard_state: HardState
    before: Configuration
    after: Configuration


def latest_configuration(restored: Restored) -> Configuration:
    """The configuration the restored log ends with (the one the node acts on)."""
    configuration = restored.snapshot.configuration if restored.snapshot else Configuration()
    after = restored.snapshot.index if restored.snapshot else 0
    for entry in restored.entries:
        if entry.kind is EntryKind.CONFIG and entry.index > after:
            configuration = ConfigChange.decode(entry.data).configuration
    return configuration


def force_configuration(restored: Restored, node_id: str, voters: Iterable[str] = (), *,
                        actor: str = RECOVERY_ACTOR, hlc: int = 0) -> Recovery:
    """The recovery of `node_id`'s restored state with `voters` (default: itself alone).

    InvalidCommand saying what is wrong: nothing stored, the node is not a member of the
    stored configuration, or a named voter is not a member or was removed for good.
    """
    before = latest_configuration(restored)
    if not before.members():
        raise InvalidCommand("the control store holds no configuration: this node never joined a "
                             "control plane, so there is nothing to recover")
    if not before.is_member(node_id):
        raise InvalidCommand(f"node {node_id} is not a member of the stored configuration (voters "
                             f"{_names(before.voters)}, learners {_names(before.learners)}); pass "
                             "the --node-id this node was started with")
    chosen = frozenset(voters) | {node_id}
    for voter in sorted(chosen):
        if not 0 < len(voter) <= MAX_NODE_ID_CHARS:
            raise InvalidCommand(f"a voter id is 1..{MAX_NODE_ID_CHARS} characters, got {voter!r}")
        if voter in before.removed:
            raise InvalidCommand(f"node {voter} was removed for good; it cannot be a voter again")
        if not before.is_member(voter):
            raise InvalidCommand(f"node {voter} is not a member of the stored configuration "
                                 f"(members: {_names(before.members())})")
    # The next generation: members still at the old one are refused from now on (core.py).
    after = Configuration(chosen, before.members() - chosen, before.removed, before.cluster,
                          before.epoch + 1)
    last_index = restored.base_index + len(restored.entries)
    last_term = restored.entries[-1].term if restored.entries else restored.base_term
    term = max(restored.hard_state.term, last_term) + RECOVERY_TERM_GAP
    change = ConfigChange(MembershipChange(ChangeOp.RECOVER, node_id), after, actor, node_id, hlc)
    entry = Entry(last_index + 1, term, EntryKind.CONFIG, change.encode())
    return Recovery(entry, HardState(term, node_id, entry.index), before, after)


def check_rejoin(restored: Restored, node_id: str) -> Configuration:
    """The configuration `node_id` forgets when it rejoins; InvalidCommand when a rejoin would
    do harm (the node is its configuration's only voter: its log is the cluster's) or cannot
    help (removed for good, never a member)."""
    config = latest_configuration(restored)
    if not config.members():
        raise InvalidCommand("the control store holds no configuration: this node never joined a "
                             "control plane, so it has nothing to forget; just start it")
    if node_id in config.removed:
        raise InvalidCommand(f"node {node_id} was removed for good: wipe its data directory and start "
                             "it as a new node")
    if not config.is_member(node_id):
        raise InvalidCommand(f"node {node_id} is not a member of the stored configuration (members: "
                             f"{_names(config.members())}); pass the --node-id it was started with")
    if config.voters == {node_id}:
        raise InvalidCommand(f"node {node_id} is the only voter of its configuration: its log is the "
                             "cluster's, and forgetting it would lose the policy. Rejoin the other "
                             "nodes instead")
    return config


def _names(ids: Iterable[str]) -> str:
    return ", ".join(sorted(ids)) or "-"
