"""A peer that comes back (healed partition, restart) is synced with at once, not at the next
random pick of a later round (regression: a healed 2|3 split took 11 s to equal Merkle roots)."""

from __future__ import annotations

import asyncio
import dataclasses

from meshkp.replication.peers import PeerRef

from .helpers import FAST, Mesh


async def test_a_returned_peer_gets_the_next_round_before_the_interval_ends() -> None:
    config = dataclasses.replace(FAST, first_sync_delay_s=0.0, sync_interval_s=3600)
    mesh = Mesh(3, config)
    try:
        replicator = mesh[0].replicator
        synced: list[str] = []
        real = replicator.sync_with

        async def recording(peer: PeerRef) -> object:
            outcome = await real(peer)
            synced.append(peer.node_id)  # once the round is over
            return outcome

        replicator.sync_with = recording  # type: ignore[method-assign]
        for member in mesh.members:  # no node is empty, so none starts with a snapshot copy
            await member.upload(100)
        await replicator.start()
        async with asyncio.timeout(10):
            while not synced:  # the first round, to a random peer, then an hour's pause
                await asyncio.sleep(0.01)
        await mesh[2].upload(1, 2)  # n2 took writes n0 has not seen
        replicator.peer_returned("n2")
        replicator.peer_returned("n2")  # queued once
        async with asyncio.timeout(10):
            while len(synced) < 2:
                await asyncio.sleep(0.01)
        assert synced[1] == "n2"
        assert await mesh[0].root() == await mesh[2].root()
        await asyncio.sleep(0.1)
        assert len(synced) == 2, synced
    finally:
        await mesh.close()


async def test_a_returned_peer_that_left_the_view_again_is_skipped() -> None:
    config = dataclasses.replace(FAST, first_sync_delay_s=3600)
    mesh = Mesh(2, config)
    try:
        replicator = mesh[0].replicator
        replicator.peer_returned("gone")
        assert replicator._returned_peer(replicator.peers.alive_peers()) is None
    finally:
        await mesh.close()
