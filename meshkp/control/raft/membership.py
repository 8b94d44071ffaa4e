"""Who votes: the configuration, and its one-member-at-a-time changes through the log.

Single-server changes (Raft thesis §4.1): a change adds or removes at most one voter, so every
majority of the old voter set overlaps every majority of the new one and no two leaders can be
elected across a change. Each node uses the latest configuration in its log, committed or not,
and the leader starts no change before the previous one committed and an entry of its own term
committed (the thesis's fix of the single-server change bug, 2015). A CONFIG entry carries the
whole resulting configuration, so it never depends on replaying older ones.

Learners receive the log but neither vote nor count for commit. Removed ids are kept (bounded),
so a member removed for good that comes back is refused by name.

Every configuration also names its generation: the cluster's id (drawn once, at bootstrap) and
a recovery epoch that only `meshkp recover` bumps (recovery.py). Every control message carries
the newest generation its sender knows, so that members of an older generation (voters lost,
then back after a forced recovery) and of another cluster are refused (core.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from meshkp.errors import InvalidCommand, WireError

# Node ids are the wire sender ids (meshkp/net/wire.py MAX_SENDER_CHARS).
MAX_NODE_ID_CHARS = 64
# Voters plus learners. Every member is one stream of the leader's log; a mesh of more nodes
# keeps its extra nodes outside the control plane (they still read the policy through peers).
MAX_MEMBERS = 1024
# Removed ids remembered so their comeback is refused; the oldest are forgotten beyond it.
MAX_REMOVED = 1024
# Free text in a change (the actor's name).
MAX_ACTOR_CHARS = 128
# A cluster id: 16 hex digits from bootstrap; bounded like a node id.
MAX_CLUSTER_ID_CHARS = 64


class ChangeOp(IntEnum):
    ADD_LEARNER = 1  # a new member, receiving the log
    PROMOTE = 2  # learner -> voter (when caught up and voters < max_voters)
    DEMOTE = 3  # voter -> learner (autopilot replacing a dead voter)
    REMOVE = 4  # gone for good: its id is refused from now on
    BOOTSTRAP = 5  # the founding configuration (bootstrap.py); never proposed
    RECOVER = 6  # a configuration forced offline after losing a majority (recovery.py); never proposed


@dataclass(frozen=True, order=True, slots=True)
class Generation:
    """Which cluster, and how many forced recoveries into its life ("" and 0 before they existed)."""

    cluster: str = ""
    epoch: int = 0

    def __str__(self) -> str:
        return f"{self.cluster or '-'}/{self.epoch}"


@dataclass(frozen=True, slots=True)
class Configuration:
    """The voter and learner sets, the ids removed for good (oldest first), the generation."""

    voters: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()
    removed: tuple[str, ...] = ()
    cluster: str = ""
    epoch: int = 0

    def is_member(self, node_id: str) -> bool:
        return node_id in self.voters or node_id in self.learners

    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    @property
    def generation(self) -> Generation | None:
        """This configuration's generation; None before the node holds any (a joiner)."""
        return Generation(self.cluster, self.epoch) if self.members() else None

    def with_members(self, voters: frozenset[str], learners: frozenset[str],
                     removed: tuple[str, ...]) -> Configuration:
        """The same generation with other members."""
        return Configuration(voters, learners, removed, self.cluster, self.epoch)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"v": sorted(self.voters), "l": sorted(self.learners),
                               "r": list(self.removed)}
        if self.cluster or self.epoch:  # omitted when unset: older stores decode the same
            obj["c"], obj["e"] = self.cluster, self.epoch
        return obj

    @classmethod
    def from_obj(cls, obj: object) -> Configuration:
        """Inverse of to_obj; WireError naming what is malformed."""
        if not isinstance(obj, Mapping):
            raise WireError("configuration must be a map")
        voters = _ids(obj.get("v"), "voters", MAX_MEMBERS)
        learners = _ids(obj.get("l"), "learners", MAX_MEMBERS)
        removed = _ids(obj.get("r"), "removed", MAX_REMOVED)
        if set(voters) & set(learners) or len(voters) + len(learners) > MAX_MEMBERS:
            raise WireError("configuration lists a node as voter and learner, or too many members")
        generation = generation_from_obj([obj.get("c", ""), obj.get("e", 0)])
        return cls(frozenset(voters), frozenset(learners), tuple(removed), generation.cluster,
                   generation.epoch)


def generation_from_obj(obj: object) -> Generation:
    """A [cluster, epoch] pair from the wire or the store; WireError if malformed."""
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise WireError("generation must be [cluster, epoch]")
    cluster, epoch = obj
    if not isinstance(cluster, str) or len(cluster) > MAX_CLUSTER_ID_CHARS:
        raise WireError(f"generation cluster must be a string of at most {MAX_CLUSTER_ID_CHARS} characters")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 2**32:
        raise WireError("generation epoch must be an unsigned 32-bit int")
    return Generation(cluster, epoch)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One change asked by an operator, autopilot or a joining node."""

    op: ChangeOp
    node: str


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """The payload of a CONFIG entry: the change, who asked, and the configuration it makes.

    `hlc` is the proposing node's hybrid logical clock (wall ms << 16 | logical, as tombstones
    carry), for the audit trail; ordering comes from the log index, never from it.
    """

    change: MembershipChange
    configuration: Configuration
    actor: str = ""
    node: str = ""
    hlc: int = 0

    def encode(self) -> bytes:
        data: bytes = msgpack.packb(
            {"op": int(self.change.op), "n": self.change.node, "cfg": self.configuration.to_obj(),
             "a": self.actor, "by": self.node, "hlc": self.hlc},
            use_bin_type=True,
        )
        return data

    @classmethod
    def decode(cls, data: bytes) -> ConfigChange:
        """Inverse of encode; WireError for anything malformed (entries come from peers)."""
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
        except Exception as exc:  # msgpack raises many types; the contract is WireError only
            raise WireError(f"config entry is not valid msgpack: {exc}") from exc
        if not isinstance(obj, dict):
            raise WireError("config entry must be a map")
        op = obj.get("op")
        if not isinstance(op, int) or isinstance(op, bool) or op not in ChangeOp._value2member_map_:
            raise WireError(f"config entry has unknown op {op!r}")
        hlc = obj.get("hlc")
        if not isinstance(hlc, int) or isinstance(hlc, bool) or not 0 <= hlc < 2**64:
            raise WireError("config entry hlc must be an unsigned 64-bit int")
        return cls(
            MembershipChange(ChangeOp(op), _id(obj.get("n"), "node")),
            Configuration.from_obj(obj.get("cfg")),
            _text(obj.get("a"), "actor"),
            _text(obj.get("by"), "by", MAX_NODE_ID_CHARS),
            hlc,
        )


def changed(config: Configuration, change: MembershipChange, max_voters: int) -> Configuration:
    """The configuration after `change`; InvalidCommand saying why when it is not allowed."""
    node, voters, learners = change.node, config.voters, config.learners
    if change.op is ChangeOp.BOOTSTRAP:
        raise InvalidCommand("a cluster is bootstrapped once, by its first node; it cannot be proposed")
    if change.op is ChangeOp.RECOVER:
        raise InvalidCommand("a forced recovery is written offline by `meshkp recover`; it cannot be "
                             "proposed")
    if not node or len(node) > MAX_NODE_ID_CHARS:
        raise InvalidCommand(f"a member id is 1..{MAX_NODE_ID_CHARS} characters, got {node!r}")
    if node in config.removed:
        raise InvalidCommand(f"node {node} was removed for good; it must rejoin with a new id "
                             "(empty data directory)")
    if change.op is ChangeOp.ADD_LEARNER:
        if config.is_member(node):
            raise InvalidCommand(f"node {node} is already a member")
        if len(voters) + len(learners) >= MAX_MEMBERS:
            raise InvalidCommand(f"the control plane has {MAX_MEMBERS} members, its bound")
        return config.with_members(voters, learners | {node}, config.removed)
    if change.op is ChangeOp.PROMOTE:
        if node not in learners:
            raise InvalidCommand(f"node {node} is not a learner; only learners can be promoted")
        if len(voters) >= max_voters:
            raise InvalidCommand(f"the cluster already has {len(voters)} voters (max_voters is "
                                 f"{max_voters}); demote or remove one first")
        return config.with_members(voters | {node}, learners - {node}, config.removed)
    if change.op is ChangeOp.DEMOTE:
        if node not in voters:
            raise InvalidCommand(f"node {node} is not a voter")
        if len(voters) == 1:
            raise InvalidCommand(f"node {node} is the last voter; promote another one first")
        return config.with_members(voters - {node}, learners | {node}, config.removed)
    # REMOVE
    if not config.is_member(node):
        raise InvalidCommand(f"node {node} is not a member")
    if node in voters and len(voters) == 1:
        raise InvalidCommand(f"node {node} is the last voter; promote another one first")
    removed = (*config.removed, node)[-MAX_REMOVED:]
    return config.with_members(voters - {node}, learners - {node}, removed)


def _id(value: object, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NODE_ID_CHARS:
        raise WireError(f"{what} must be a node id of 1..{MAX_NODE_ID_CHARS} characters")
    return value


def _ids(value: object, what: str, limit: int) -> list[str]:
    if not isinstance(value, list) or len(value) > limit:
        raise WireError(f"configuration {what} must be a list of at most {limit} ids")
    ids = [_id(item, what) for item in value]
    if len(set(ids)) != len(ids):
        raise WireError(f"configuration {what} lists an id twice")
    return ids


def _text(value: object, what: str, limit: int = MAX_ACTOR_CHARS) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError(f"config entry {what} must be a string of at most {limit} characters")
    return value


class ConfigHistory:
    """The configurations of the log, oldest first: the last is in force, committed or not.

    It starts from the snapshot's (or the empty) configuration and follows the log's CONFIG
    entries, forgetting those cut by a conflicting leader and those compacted away.
    """

    def __init__(self, index: int = 0, configuration: Configuration | None = None) -> None:
        self._items: list[tuple[int, Configuration]] = [(index, configuration or Configuration())]

    @property
    def latest(self) -> Configuration:
        return self._items[-1][1]

    @property
    def latest_index(self) -> int:
        return self._items[-1][0]

    def at(self, index: int) -> Configuration:
        """The configuration in force right after entry `index`."""
        return next(c for i, c in reversed(self._items) if i <= index)

    def add(self, index: int, configuration: Configuration) -> None:
        self._items.append((index, configuration))

    def truncate(self, index: int) -> None:
        """Forget configurations of entries at or after `index` (the log was cut there)."""
        kept = [(i, c) for i, c in self._items if i < index]
        self._items = kept or self._items[:1]

    def compact(self, base_index: int) -> None:
        """Keep only what is needed for indexes from `base_index` on."""
        keep_from = max((n for n, (i, _) in enumerate(self._items) if i <= base_index), default=0)
        self._items = self._items[keep_from:]
