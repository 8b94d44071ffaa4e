"""Autopilot (Consul's): the next membership change a leader should propose, from SWIM health.

A pure function over the leader's Status and what membership (SWIM) says of each node; the
driver calls it on the leader now and then and proposes the change it returns, one at a time
(the core refuses a second while one is uncommitted). In order of priority:

1. a voter SWIM has declared dead for `dead_voter_replace_after` is demoted, but only when a
   healthy, caught-up learner can take its seat (so a brief outage never shrinks the quorum);
2. while voters are fewer than `max_voters`, the longest-stable caught-up learner is promoted;
3. a live node that is not a member yet (and was not removed for good) is added as a learner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshkp.control.config import ControlConfig
from meshkp.control.raft.membership import ChangeOp, MembershipChange
from meshkp.control.raft.ready import Status
from meshkp.control.raft.types import Role


@dataclass(frozen=True, slots=True)
class Health:
    """What membership says of a node: alive or not, since when (the driver's monotonic now)."""

    alive: bool
    since: float


def next_change(config: ControlConfig, status: Status, health: Mapping[str, Health],
                now: float) -> MembershipChange | None:
    """The change to propose now, or None; only meaningful on the leader."""
    if status.role is not Role.LEADER:
        return None
    cfg = status.configuration
    promotable = sorted(
        (h.since, node) for node, h in health.items()
        if node in cfg.learners and h.alive and now - h.since >= config.learner_stable_time
        and _caught_up(config, status, node)
    )
    dead = sorted(
        node for node in cfg.voters
        if node != status.node_id and node in health and not health[node].alive
        and now - health[node].since >= config.dead_voter_replace_after
    )
    if dead and promotable:
        return MembershipChange(ChangeOp.DEMOTE, dead[0])
    if promotable and len(cfg.voters) < config.max_voters:
        return MembershipChange(ChangeOp.PROMOTE, promotable[0][1])
    newcomers = sorted(node for node, h in health.items()
                       if h.alive and not cfg.is_member(node) and node not in cfg.removed)
    if newcomers:
        return MembershipChange(ChangeOp.ADD_LEARNER, newcomers[0])
    return None


def _caught_up(config: ControlConfig, status: Status, node: str) -> bool:
    peer = status.peers.get(node)
    return peer is not None and status.last_index - peer.match <= config.promote_max_lag
