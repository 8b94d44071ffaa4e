"""x-consistency=one|quorum|all: how many nodes must have merged a write before the reply.

`one` replies once the write is durable here. `quorum` waits for a majority of the cluster's
members (self included), `all` for every member, each counted when it acknowledges the push
of the new record state (a PushAck means the peer merged it durably, so a read there returns
it: R=1, W=quorum gives read-your-writes on any node). That push is the pusher's own
(push.py): the write is queued for every live peer and pushed once. Members counted are those
the membership knows and that have not left; a dead member therefore makes `all` time out, as
it should. On timeout the write stays stored here and keeps spreading. The add handler
(meshkp/http/hkp.py) waits through `Replicator.wait_for`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from meshkp.errors import InvalidRequest
from meshkp.replication.peers import PeerRef
from meshkp.replication.push import Pusher

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


class AckWait:
    """The acks awaited for some keys: done once `needed` peers acknowledged them all, or
    once no peer that has not can still do so (it failed or lost one of them)."""

    def __init__(self, fingerprints: Sequence[bytes], peers: Sequence[PeerRef], needed: int) -> None:
        self.since = 0  # set by Pusher.watch
        self.needed = needed
        self.count = 0
        self._missing = {peer.node_id: set(fingerprints) for peer in peers}
        self.done = asyncio.Event()
        self._check()

    def acked(self, node_id: str, fingerprints: Iterable[bytes]) -> None:
        missing = self._missing.get(node_id)
        if missing is None or self.done.is_set():
            return  # counted no further once done: the reply says "needed of needed"
        missing.difference_update(fingerprints)
        if not missing:
            del self._missing[node_id]
            self.count += 1
            self._check()

    def lost(self, node_id: str, fingerprints: Iterable[bytes]) -> None:
        missing = self._missing.get(node_id)
        if missing is not None and not missing.isdisjoint(fingerprints):
            del self._missing[node_id]
            log.info("event=consistency_push_failed peer=%s", node_id)
            self._check()

    def _check(self) -> None:
        if self.count >= self.needed or not self._missing:
            self.done.set()


async def gather_acks(
    pusher: Pusher,
    peers: Sequence[PeerRef],
    fingerprints: Sequence[bytes],
    needed: int,
    timeout: float,
) -> int:
    """Acks (self included) of `fingerprints` by `peers`, once `needed` or after `timeout`.

    They are counted on the pusher's own pushes: the keys a commit just queued for a peer are
    not pushed to it again, and those not queued for it (a key already held here, a peer the
    origin fanout left out) are queued now.
    """
    acked = 1
    if needed <= acked or not fingerprints or not peers:
        return acked
    wait = AckWait(fingerprints, peers, needed - acked)
    pusher.watch(wait)
    try:
        pusher.push_to(peers, fingerprints)
        async with asyncio.timeout(timeout):
            await wait.done.wait()
    except TimeoutError:
        pass
    finally:
        pusher.unwatch(wait)
    return acked + wait.count
