"""SimTransport: the GossipTransport of a simulated node, one host on a SimNetwork.

It is to SocketTransport what memberlist's MockTransport is to NetTransport: the driver above
(meshkp/membership/service.py) cannot tell them apart. Frames are sealed and opened by the
host's codec inside the SimNetwork, which counts every drop in its SimTraffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from meshkp.clock import Scheduler
from meshkp.errors import PeerUnreachable
from meshkp.membership.transport import GossipReceiver
from meshkp.net.addr import Addr, format_addr
from meshkp.sim.codec import Codec
from meshkp.sim.network import SimNetwork
from meshkp.swim.messages import Message


class SimTransport:
    """One simulated host at `addr`: its UDP socket and TCP listener on `network`."""

    def __init__(
        self,
        network: SimNetwork,
        addr: Addr,
        codec: Codec,
        clock: Scheduler,
        on_resume: Callable[[], None] = lambda: None,
    ) -> None:
        self.network = network
        self.addr = addr
        self._codec = codec
        self._clock = clock  # the process's clock: exchange timeouts stop while it is paused
        self._on_resume = on_resume
        self._receiver: GossipReceiver | None = None

    # ---- GossipTransport ----

    async def start(self, receiver: GossipReceiver) -> Addr:
        self._receiver = receiver
        self.network.attach(self.addr, self, self._codec)
        return self.addr

    async def stop(self) -> None:
        self._receiver = None
        self.network.detach(self.addr)

    def send_packet(self, addr: Addr, message: Message) -> None:
        self.network.send_udp(self.addr, addr, message)

    async def exchange(self, addr: Addr, message: Message,
                       timeout: float) -> tuple[Message, str | None]:
        # None = timed out. (An exception set on the future would sit in a reference cycle with
        # this frame, one per failed exchange, for the cyclic GC to find.)
        reply: asyncio.Future[tuple[Message, str | None] | None] = (
            asyncio.get_running_loop().create_future())

        def settle(answer: tuple[Message, str | None] | None) -> None:
            if not reply.done():
                reply.set_result(answer)

        self.network.send_tcp(self.addr, addr, message, timeout,
                              lambda msg, sender: settle((msg, sender)))
        timer = self._clock.call_later(timeout, lambda: settle(None))
        try:
            answer = await reply
        finally:
            timer.cancel()
        if answer is None:
            raise PeerUnreachable(f"{format_addr(addr)} sent no reply within {timeout:g} s")
        return answer

    # ---- SimNetwork Endpoint ----

    def on_datagram(self, src: Addr, message: Message, sender: str | None) -> None:
        if self._receiver is not None:
            self._receiver.on_packet(src, message, sender)

    def on_tcp_request(self, src: Addr, message: Message, sender: str | None) -> Message | None:
        if self._receiver is None:
            return None
        return self._receiver.on_stream(src, message, sender)

    def on_resume(self) -> None:
        self._on_resume()
