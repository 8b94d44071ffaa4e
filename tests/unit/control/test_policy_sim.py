"""The real policy state machine under the seeded fault schedules.

Every node applies real proposals (a mix of valid, stale, refused and undecodable ones) and
snapshots and restores the real PolicyState. Checked: state-machine safety on the full state
(equal encodings at every index), and that two nodes at the same policy version hold the
same policy, whatever else they applied.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest

from meshkp.control.policy.apply import apply
from meshkp.control.policy.commands import (
    BlacklistAdd,
    BlacklistRemove,
    Proposal,
    PutAdmin,
    RemoveAdmin,
    SetLimits,
    SetRouting,
)
from meshkp.control.policy.snapshot import decode_state, encode_state
from meshkp.control.policy.state import PolicyState
from meshkp.control.raft.types import Entry
from tests.unit.control.schedules import run_schedule
from tests.unit.control.simcluster import Cluster


@dataclass
class PolicyMachine:
    state: PolicyState = field(default_factory=PolicyState)

    @property
    def index(self) -> int:
        return self.state.token.index

    def apply(self, entry: Entry) -> None:
        self.state = apply(self.state, entry)

    def digest(self) -> bytes:
        return hashlib.sha256(encode_state(self.state)).digest()

    def encode(self) -> bytes:
        return encode_state(self.state)

    @classmethod
    def load(cls, data: bytes | None) -> PolicyMachine:
        return cls(decode_state(data)) if data else cls()


def _payload(seed: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)

    def make(n: int) -> bytes:
        fp = bytes([rng.randrange(4)]) * 20
        command = rng.choice([
            SetLimits({"upload_keys": rng.randint(1, 100)}),
            SetLimits({"packet_bytes": 10**9}),  # refused at apply: above key_bytes
            BlacklistAdd(((fp, f"reason {n}"),)),
            BlacklistRemove((fp,)),
            SetRouting(f"n{rng.randrange(5)}", rng.randint(0, 100), rng.random() < 0.5),
            PutAdmin(f"admin{rng.randrange(3)}", hashlib.sha256(bytes([n % 256])).digest()),
            RemoveAdmin(f"admin{rng.randrange(3)}"),
        ])
        expect = rng.choice([None, None, rng.randrange(n + 1)])
        if rng.random() < 0.05:
            return b"\x93not a proposal"
        return Proposal(command, "op", "n0", n, expect).encode()

    return make


def _policy_of(state: PolicyState) -> bytes:
    return encode_state(PolicyState(version=state.version, limits=state.limits, blacklist=state.blacklist,
                                    conflict_rules=state.conflict_rules, routing=state.routing,
                                    admins=state.admins))


@pytest.mark.parametrize("seed", range(6))
def test_nodes_at_one_policy_version_hold_one_policy(seed: int) -> None:
    policy_at: dict[int, bytes] = {}

    def check(cluster: Cluster, node_id: str, entry: Entry) -> None:
        machine = cluster.nodes[node_id].machine
        assert isinstance(machine, PolicyMachine)
        policy = _policy_of(machine.state)
        if policy_at.setdefault(machine.state.version, policy) != policy:
            raise cluster.fail(f"{node_id} holds another policy at version {machine.state.version}")

    cluster = run_schedule(seed, machine=PolicyMachine.load, payload=_payload(seed), on_apply=check)
    states = {encode_state(n.machine.state) for n in cluster.nodes.values()}  # type: ignore[attr-defined]
    assert len(states) == 1  # converged: one state on every node
    assert len(policy_at) > 3  # the policy did change along the way
