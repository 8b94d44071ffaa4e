"""Replication bytes per node at 50 and 200 nodes: push of one write and in-sync anti-entropy.

In-process replicators (MemoryStore) over the loopback channel, which runs every message
through the real frame codec and counts what TCP would carry (length prefix, sealing,
signature trailer): the simulation tier of replication. Membership (SWIM gossip and
push-pull) is bench/swim_sim.py's, on meshkp/sim.

- push: one upload at node 0 pushed to every peer (origin_fanout 0): bytes node 0 sends and
  receives (acks) for it, and what each receiver gets and answers;
- anti-entropy: every node runs one round with a random peer between equal trees (the
  steady state): bytes per round, both directions, with each diff protocol.

    python -m bench.scaling_sync_bytes --nodes 50,200
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import statistics

import click

from bench.common import OUT_DIR
from meshkp.replication.peers import ByteMeter
from tests.unit.replication.helpers import FAST, Mesh


async def measure(n: int, protocol: str) -> dict[str, float]:
    mesh = Mesh(n, dataclasses.replace(FAST, diff_protocol=protocol))
    await mesh[0].upload(1)  # the first push opens each peer's link: not the steady state
    await mesh.settle()
    meters: list[ByteMeter] = []
    channel = mesh[0].replicator.channel
    real_request = channel.request

    async def metered(peer, message, timeout, meter=None):  # type: ignore[no-untyped-def]
        meter = meter if meter is not None else ByteMeter()
        meters.append(meter)
        return await real_request(peer, message, timeout, meter)

    channel.request = metered  # type: ignore[method-assign]
    await mesh[0].upload(2)
    await mesh.settle()
    channel.request = real_request  # type: ignore[method-assign]
    push_sent = sum(m.sent for m in meters)
    push_acks = sum(m.received for m in meters)
    rng = random.Random(n)
    rounds = []
    for member in mesh.members:
        peers = member.replicator.peers.alive_peers()
        outcome = await member.replicator.sync_with(rng.choice(peers))
        assert outcome is not None and outcome.in_sync
        rounds.append(outcome.meter.sent + outcome.meter.received)
    return {"push_origin_sent": push_sent, "push_origin_acks": push_acks,
            "push_per_receiver": (push_sent + push_acks) / (n - 1),
            "round_bytes": statistics.median(rounds)}


@click.command()
@click.option("--nodes", default="50,200", show_default=True)
def main(nodes: str) -> None:
    """Push and anti-entropy bytes per node at each mesh size."""
    run(nodes)


def run(nodes: str = "10") -> None:
    """The benchmark (bench.run_all --quick calls it with one small mesh)."""
    out = {}
    for n in (int(x) for x in nodes.split(",")):
        for protocol in ("merkle", "compact"):
            row = asyncio.run(measure(n, protocol))
            out[f"{n}/{protocol}"] = row
            print(f"nodes={n:3d} {protocol:7s} one write: origin sends {row['push_origin_sent']:.0f} B"
                  f" and gets {row['push_origin_acks']:.0f} B of acks; each receiver "
                  f"{row['push_per_receiver']:.0f} B; in-sync round {row['round_bytes']:.0f} B")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "scaling_sync_bytes.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
