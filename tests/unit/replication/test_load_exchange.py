"""Load summaries: their wire form and bounds, the board's sender check, and one exchange over
real sealed TCP on 127.0.0.1 that tells both sides each other's load."""

from __future__ import annotations

import time

import msgpack
import pytest

from meshkp.errors import ReplicationError, WireError
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.replication.load import LoadBoard, exchange
from meshkp.replication.load_wire import MAX_OPS, MAX_REACH, LoadReport, LoadSummary, OpLoad
from meshkp.replication.messages import Message, SyncError, decode_message
from meshkp.replication.peers import PeerRef
from meshkp.replication.transport import ReplicationListener


def summary(node: str = "n1", **changes: object) -> LoadSummary:
    base = LoadSummary(node, 1_700_000_000.5, 2.0,
                       {"get": OpLoad(120.5, 0.0004, 0.002), "add": OpLoad(0.5)},
                       0.35, 0.001, 0.02, 7, 0.012, 40, None, 0, 3.5, 2, {"n2": 0.0004})
    return LoadSummary(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})  # type: ignore[arg-type]


def test_a_summary_survives_the_wire() -> None:
    report = LoadReport(summary())
    body = msgpack.unpackb(msgpack.packb(report.to_map()), raw=False)
    assert decode_message(LoadReport.TYPE, body) == report
    assert decode_message(LoadReport.TYPE, {"s": None}) == LoadReport(None)
    # A summary is small: it rides in one exchange per peer and interval.
    assert len(msgpack.packb(report.to_map())) < 300


def test_a_node_before_its_first_exchange_reports_its_reach_as_unknown() -> None:
    # Unknown, not "reached nobody": `meshkp top` drew every starting node as its own group
    # and logged a partition, then its healing, on every start of a mesh.
    assert LoadBoard().reached is None

    def over_the_wire(s: LoadSummary) -> LoadSummary | None:
        body = msgpack.unpackb(msgpack.packb(LoadReport(s).to_map()), raw=False)
        return decode_message(LoadReport.TYPE, body).summary  # type: ignore[attr-defined, no-any-return]

    unknown = over_the_wire(summary(reach=None))
    assert unknown is not None and unknown.reach is None
    alone = over_the_wire(summary(reach={}))  # exchanged, and nobody answered
    assert alone is not None and alone.reach == {}


@pytest.mark.parametrize("bad", [
    {"node": ""},
    {"node": "x" * 65},
    {"cpu": -1},
    {"cpu": float("nan")},
    {"cpu": float("inf")},
    {"cpu": True},
    {"conn": "7"},
    {"lag": [0.1]},
    {"ops": {"GET": [1.0, None, None]}},
    {"ops": {"get": [None, None, None]}},
    {"ops": {f"op{'_' * i}": [1.0, None, None] for i in range(MAX_OPS + 1)}},
    {"ops": {"get": [1.0, 2.0]}},
    {"reach": {"n2": -0.1}},
    {"reach": {"": 0.1}},
    {"reach": [["n2", 0.1]]},
    {"reach": {f"n{i}": 0.1 for i in range(MAX_REACH + 1)}},
])
def test_a_malformed_summary_is_a_wire_error(bad: dict[str, object]) -> None:
    body = {**summary().to_map(), **bad}
    with pytest.raises(WireError):
        decode_message(LoadReport.TYPE, {"s": body})


def test_the_board_files_a_summary_only_under_its_sender() -> None:
    board = LoadBoard()
    board.store("n2", summary("n2"), 5.0)
    assert board.peers["n2"].received == 5.0
    with pytest.raises(ReplicationError):
        board.store("n3", summary("n2"), 6.0)  # n3 speaking for n2
    assert board.refused == 1 and board.peers["n2"].received == 5.0
    reply = board.handle("n3", LoadReport(summary("n2")), 6.0)
    assert isinstance(reply, SyncError) and "only its own load" in reply.reason
    board.own = summary("n1")
    assert board.handle("n2", LoadReport(summary("n2")), 7.0) == LoadReport(board.own)


class _Peers:
    def __init__(self, peers: list[PeerRef]) -> None:
        self.peers = peers

    def alive_peers(self) -> list[PeerRef]:
        return self.peers

    def cluster_size(self) -> int:
        return len(self.peers) + 1


async def test_one_exchange_tells_both_sides() -> None:
    keyring = Keyring([generate_key()])
    a = ReplicationListener(("127.0.0.1", 0), keyring,
                            FrameAuth(NodeIdentity.generate("n1")), NetStats())
    b = ReplicationListener(("127.0.0.1", 0), keyring,
                            FrameAuth(NodeIdentity.generate("n2")), NetStats())
    board_a, board_b = LoadBoard(), LoadBoard()

    async def on_b(sender: str | None, message: Message) -> Message:
        assert isinstance(message, LoadReport)
        return board_b.handle(sender, message, time.monotonic())

    b.handler = on_b
    await a.start()
    await b.start()
    try:
        board_a.own, board_b.own = summary("n1"), summary("n2", cpu=0.9)
        unreachable = PeerRef("n3", ("127.0.0.1", 1))  # nobody listens: counted as not answered
        peers = _Peers([PeerRef("n2", b.transport.local_addr), unreachable])
        answered = await exchange(board_a, peers, a.channel, 2.0, time.monotonic)
        assert answered == 1
        assert board_a.peers["n2"].summary.cpu == 0.9
        # n1 measured its round trip to n2; the next summary of n1 says it reached n2 only.
        assert set(board_a.reached) == {"n2"} and 0 < board_a.reached["n2"] < 2.0
        assert board_a.contacts["n2"].rtt == board_a.reached["n2"]
        # n3 did not answer: it is left out of the next exchanges for a while, then asked again.
        assert not board_a.due("n3", time.monotonic()) and board_a.due("n2", time.monotonic())
        assert board_b.peers["n1"].summary == board_a.own
    finally:
        await a.stop()
        await b.stop()


def test_a_peer_that_does_not_answer_is_asked_less_and_less_often() -> None:
    board = LoadBoard()
    waits = []
    for _ in range(9):
        board.failed("n9", 100.0, 2.0)
        until = next(t for t in (100.0 + s / 10 for s in range(0, 2000)) if board.due("n9", t))
        waits.append(round(until - 100.0, 1))
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    board.answered("n9")
    assert board.due("n9", 100.0)
