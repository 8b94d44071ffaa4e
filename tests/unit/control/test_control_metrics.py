"""/metrics of the control plane: its transport's frames sent and the links' drops, by reason."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from meshkp.clock import SystemClock
from meshkp.control import ControlConfig, RaftStorage, VoteRequest
from meshkp.control.driver.link import MAX_QUEUE
from meshkp.control.driver.loop import InlineStorage
from meshkp.control.driver.plane import ControlPlane
from meshkp.control.driver.tcp import TcpControlTransport
from meshkp.http.control_metrics import ControlMetrics
from meshkp.net.addr import Addr
from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.store.memory import MemoryStore


def _sample(text: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    raise AssertionError(f"{prefix!r} not in /metrics:\n{text}")


def test_link_drops_and_sent_frames_are_exported_by_reason() -> None:
    async def scenario() -> str:
        keyring = Keyring([generate_key()])
        addrs: dict[str, Addr] = {}
        peer = TcpControlTransport(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("b")),
                                   addrs.get)
        peer.receive = lambda _sender, _m: None
        addrs["b"] = await peer.start()
        gone = TcpControlTransport(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("c")),
                                   addrs.get)
        addrs["c"] = await gone.start()
        await gone.stop()  # nothing listens there any more
        a = TcpControlTransport(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("a")),
                                addrs.get)
        await a.start()
        storage = RaftStorage(MemoryStore())
        plane = ControlPlane("a", ControlConfig.local(), InlineStorage(storage), storage.load(), a,
                             SystemClock(), net_stats=a.stats)
        registry = CollectorRegistry()
        ControlMetrics(plane, registry)
        try:
            for term in range(3):
                a.send("b", VoteRequest(term, 0, 0, pre=True))
            for term in range(MAX_QUEUE + 5):  # c is down: its queue overflows
                a.send("c", VoteRequest(term, 0, 0, pre=True))
            a.send("nobody", VoteRequest(0, 0, 0, pre=True))  # no control address: send_error
            for _ in range(500):
                if a.sent >= 3:
                    break
                await asyncio.sleep(0.01)
            return generate_latest(registry).decode()
        finally:
            await a.stop()
            await peer.stop()

    text = asyncio.run(scenario())
    queue_full = 'reason="queue_full",transport="tcp"'
    assert _sample(text, "meshkp_control_frames_dropped_total", queue_full) == 5
    assert _sample(text, "meshkp_control_frames_dropped_total", 'reason="send_error",transport="tcp"') == 1
    assert _sample(text, "meshkp_control_frames_sent_total", 'transport="tcp"') == 3
    assert _sample(text, "meshkp_control_bytes_sent_total", 'transport="tcp"') > 0
    assert "meshkp_control_term " in text  # beside the plane's own gauges
