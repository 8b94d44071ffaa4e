"""Load summaries exchanged over the replication listener, so any node answers GET /cluster/load.

Every `load_interval` each node sends a `LoadReport` of its own latest summary to every live
peer, and the peer answers with a `LoadReport` of its own: one exchange tells both sides. A
node keeps the last summary of each peer on its `LoadBoard`, with the local (monotonic) time it
arrived, so a reader knows how stale each figure is. The caller never polls every node.

A summary is a few hundred bytes (meshkp/replication/load_wire.py). What the figures mean and
how they are measured: meshkp/http/load.py and docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meshkp.errors import PeerUnreachable, ReplicationError, WireError
from meshkp.replication.load_wire import MAX_REACH, LoadReport, LoadSummary
from meshkp.replication.messages import Message, SyncError
from meshkp.replication.peers import Channel, PeerSource

log = logging.getLogger(__name__)

# Nodes on the board: a hostile member cannot fill our memory with made-up ids (the listener
# files a summary only under the id of the frame's sealed sender anyway).
MAX_BOARD_NODES = 1024
# A peer that does not answer an exchange (down, or a node of an older version that drops the
# unknown LoadReport frame) is asked again after one interval, then two, four... up to this
# many seconds: a rolling upgrade does not fill the old nodes' logs with dropped frames.
BACKOFF_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class Received:
    """A peer's summary and the local monotonic time it arrived."""

    summary: LoadSummary
    received: float


@dataclass(frozen=True, slots=True)
class Contact:
    """The last exchange this node completed with a peer: its round trip (s), and when."""

    rtt: float
    at: float  # local monotonic time


class LoadBoard:
    """This node's own latest summary, the last one received from each peer, and the round
    trips of this node's own exchanges."""

    def __init__(self) -> None:
        self.own: LoadSummary | None = None
        self.peers: dict[str, Received] = {}
        self.refused = 0  # reports whose node id was not their sender's (counted, dropped)
        self.contacts: dict[str, Contact] = {}
        # The peers that answered the last exchange, with their round trips (the next summary's
        # `reach`); None until the first exchange ends.
        self.reached: dict[str, float] | None = None
        # node -> (exchanges failed in a row, monotonic time before which it is not asked).
        self._backoff: dict[str, tuple[int, float]] = {}

    def due(self, node: str, now: float) -> bool:
        """Whether to ask `node` in this exchange (False while it backs off)."""
        return self._backoff.get(node, (0, 0.0))[1] <= now

    def failed(self, node: str, now: float, interval: float) -> None:
        failures = self._backoff.get(node, (0, 0.0))[0] + 1
        if node not in self._backoff and len(self._backoff) >= MAX_BOARD_NODES:
            self._backoff.clear()  # forgetting backoffs only costs a few extra requests
        wait = min(BACKOFF_MAX_S, interval * 2 ** min(failures - 1, 16))
        self._backoff[node] = (failures, now + wait)

    def answered(self, node: str) -> None:
        self._backoff.pop(node, None)

    def contact(self, node: str, rtt: float, now: float) -> None:
        if node not in self.contacts and len(self.contacts) >= MAX_BOARD_NODES:
            del self.contacts[min(self.contacts, key=lambda n: self.contacts[n].at)]
        self.contacts[node] = Contact(rtt, now)

    def store(self, sender: str | None, summary: LoadSummary | None, now: float) -> None:
        """Keep `summary` as `sender`'s, if it is about the sender."""
        if summary is None:
            return
        if sender is None or summary.node != sender:
            self.refused += 1
            raise ReplicationError(f"load report about {summary.node!r} sent by {sender!r}: "
                                   "a node reports only its own load")
        if sender not in self.peers and len(self.peers) >= MAX_BOARD_NODES:
            oldest = min(self.peers, key=lambda n: self.peers[n].received)
            del self.peers[oldest]
        self.peers[sender] = Received(summary, now)

    def handle(self, sender: str | None, report: LoadReport, now: float) -> Message:
        """Answer a peer's report with our own (the replication listener's handler calls this)."""
        try:
            self.store(sender, report.summary, now)
        except ReplicationError as exc:
            log.warning("event=load_report_refused sender=%s error=%s", sender, exc)
            return SyncError(str(exc))
        return LoadReport(self.own)


async def exchange(board: LoadBoard, peers: PeerSource, channel: Channel, timeout: float,
                   now: Callable[[], float]) -> int:
    """Send our summary to every live peer and keep their answers; the number that answered.

    `timeout`: of each request, and the first backoff of a peer that did not answer (the load
    interval). `now`: the monotonic clock the board's arrival times are read from.
    """
    report = LoadReport(board.own)
    reached: dict[str, float] = {}

    async def one(node_id: str, request: Awaitable[Message]) -> bool:
        began = now()
        try:
            reply = await request
        except (PeerUnreachable, WireError, OSError) as exc:
            log.debug("event=load_exchange_failed peer=%s error=%s", node_id, exc)
            reply = None
        if not isinstance(reply, LoadReport):
            board.failed(node_id, now(), timeout)
            return False
        board.answered(node_id)
        ended = now()
        name = reply.summary.node if reply.summary is not None else node_id
        board.contact(name, ended - began, ended)
        if len(reached) < MAX_REACH:
            reached[name] = ended - began
        if reply.summary is None:
            return True
        try:
            # Filed under the id the summary names: a static peer (--replication-peer) is known
            # by its address only. The reply is sealed with the cluster key like any other.
            board.store(reply.summary.node, reply.summary, now())
        except ReplicationError as exc:
            log.warning("event=load_report_refused sender=%s error=%s", node_id, exc)
            return False
        return True

    targets = [peer for peer in peers.alive_peers() if board.due(peer.node_id, now())]
    results = await asyncio.gather(*(
        one(peer.node_id, channel.request(peer, report, timeout)) for peer in targets))
    board.reached = reached
    return sum(results)
