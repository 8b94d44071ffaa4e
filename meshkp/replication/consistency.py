"""x-consistency=one|quorum|all: how many nodes must have merged a write before the reply.

`one` replies once the write is durable here. `quorum` waits for a majority of the cluster's
members (self included), `all` for every member, each counted when it acknowledges a direct
push of the new record state (a PushAck means the peer merged it durably, so a read there
returns it: R=1, W=quorum gives read-your-writes on any node). Members counted are those the
membership knows and that have not left; a dead member therefore makes `all` time out, as it
should. On timeout the write stays stored here and keeps spreading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from meshkp.errors import InvalidRequest, PeerUnreachable, WireError
from meshkp.replication.messages import ACK_REJECTED
from meshkp.replication.peers import PeerRef
from meshkp.replication.push import Pusher, split_by_bytes

log = logging.getLogger(__name__)

LEVELS = ("one", "quorum", "all")


def parse_level(text: str | None, default: str) -> str:
    """The consistency level asked for (None: the default); InvalidRequest if unknown."""
    if text is None or not str(text).strip():
        return default
    level = str(text).strip().lower()
    if level not in LEVELS:
        raise InvalidRequest(f"x-consistency must be one, quorum or all, got {str(text)[:20]!r}")
    return level


def required_acks(level: str, cluster_size: int) -> int:
    """Nodes (self included) that must hold the write: 1, a majority, or all."""
    size = max(1, cluster_size)
    if level == "one":
        return 1
    if level == "quorum":
        return size // 2 + 1
    if level == "all":
        return size
    raise InvalidRequest(f"unknown consistency level {level!r}")


async def gather_acks(
    pusher: Pusher,
    peers: Sequence[PeerRef],
    records: Sequence[bytes],
    needed: int,
    timeout: float,
    batch_bytes: int,
) -> int:
    """Push `records` to every peer; return acks (self included) once `needed` or timeout."""
    acked = 1
    if needed <= acked or not records or not peers:
        return acked
    chunks = split_by_bytes(records, batch_bytes)
    accepted_at = pusher.wall()  # receivers measure replication lag from here

    async def one(peer: PeerRef) -> bool:
        for chunk in chunks:
            # Every live peer gets it from us here: no relaying needed (PushBatch.relay).
            ack = await pusher.send(
                peer, chunk, forward=True, timeout=timeout, relay=False, origin_ts=accepted_at
            )
            if any(status == ACK_REJECTED for status in ack.statuses):
                return False
        return True

    tasks = [asyncio.create_task(one(peer), name=f"ack-{peer.node_id}") for peer in peers]
    try:
        async with asyncio.timeout(timeout):
            for next_done in asyncio.as_completed(tasks):
                try:
                    if await next_done:
                        acked += 1
                except (PeerUnreachable, WireError) as exc:
                    log.info("event=consistency_push_failed error=%s", exc)
                if acked >= needed:
                    break
    except TimeoutError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return acked
