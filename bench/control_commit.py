"""Control-plane commit cost in the seeded simulation: `python -m bench.control_commit [--quick]`.

For 1, 3 and 5 voters on a loss-free simulated network (0.5-5 ms delays), a client keeps up to
64 proposals in flight on the leader until N are applied on every node. Reported per committed
proposal: the CPU time of the whole cluster in this one process (every node's RaftCore, the
wire encoding and decoding of every message, the Ready loop and the state machine), and its
inverse, proposals committed per CPU second. Two state machines: the hash chain of the safety
tests, and the real policy state machine applying real SetRouting proposals (with its audit
trail, and a snapshot every snapshot_threshold entries). Default ControlConfig. Disk writes are
not included (the simulated disk is memory); "commits/sim s" is throughput in simulated time,
bounded by the pipeline (64 in flight over a ~5 ms round trip), not by CPU.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import OUT_DIR
from meshkp.control.config import ControlConfig
from meshkp.control.policy.commands import Proposal, SetRouting
from meshkp.control.raft.types import Role
from tests.unit.control.simcluster import Cluster, NetConfig
from tests.unit.control.test_policy_sim import PolicyMachine

IN_FLIGHT = 64


class _PolicyMachine(PolicyMachine):
    """The policy state machine, compared across nodes by token only: the safety tests hash the
    whole encoded state at every apply, which would cost more than what is measured here."""

    def digest(self) -> bytes:
        return str(self.state.token).encode()

    @classmethod
    def load(cls, data: bytes | None) -> PolicyMachine:
        loaded = PolicyMachine.load(data)
        return cls(loaded.state)


def _payload(n: int) -> bytes:
    return Proposal(SetRouting(f"n{n % 5}", n % 100), "bench", "n0", n).encode()


def measure(voters: int, count: int, policy: bool) -> dict[str, float]:
    cluster = Cluster(1, [f"n{i}" for i in range(voters)], config=ControlConfig(),
                      net=NetConfig(delay_min=0.0005, delay_max=0.005), drift=False, payload=_payload,
                      **({"machine": _PolicyMachine.load} if policy else {}))
    leader = cluster.run_until_leader(5.0)
    assert leader is not None
    core = cluster.nodes[leader].core
    assert core is not None
    base = cluster.proposals_committed
    start_cpu, start_sim = time.process_time(), cluster.now
    proposed = 0
    while cluster.proposals_committed - base < count:
        while proposed < count and core.role is Role.LEADER and core.last_index - core.commit < IN_FLIGHT:
            cluster.propose()
            proposed += 1
        cluster.run_until(cluster.now + 0.001)
    # Until every node has applied them, not only the first.
    while not cluster.converged():
        cluster.run_until(cluster.now + 0.001)
    cpu = time.process_time() - start_cpu
    sim = cluster.now - start_sim
    return {"voters": voters, "count": count, "policy": policy, "cpu_s": cpu,
            "cpu_us_per_commit": cpu / count * 1e6, "commits_per_cpu_s": count / cpu,
            "commits_per_sim_s": count / sim}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 proposals instead of 5,000")
    args = parser.parse_args()
    count = 1000 if args.quick else 5000
    rows = [measure(n, count, policy) for policy in (False, True) for n in (1, 3, 5)]
    header = ("state machine", "voters", "CPU us/commit", "commits/CPU s", "commits/sim s")
    print(f"{header[0]:<14} {header[1]:>6} {header[2]:>14} {header[3]:>14} {header[4]:>14}")
    for row in rows:
        print(f"{'policy' if row['policy'] else 'hash chain':<14} {row['voters']:>6} "
              f"{row['cpu_us_per_commit']:>14.0f} {row['commits_per_cpu_s']:>14.0f} "
              f"{row['commits_per_sim_s']:>14.0f}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "control_commit.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
