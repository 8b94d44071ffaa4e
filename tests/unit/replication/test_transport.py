"""The replication channel over real TCP on 127.0.0.1: bytes are metered from the frames the
transport put on the wire, not by encoding each message again."""

from __future__ import annotations

from meshkp.net.crypto import Keyring, generate_key
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.stats import NetStats
from meshkp.net.tcp import LENGTH_BYTES
from meshkp.replication.messages import Message, PushAck, PushBatch
from meshkp.replication.peers import ByteMeter, PeerRef
from meshkp.replication.transport import ReplicationListener

from .helpers import record


async def test_a_request_is_metered_as_the_bytes_on_the_wire() -> None:
    keyring = Keyring([generate_key()])
    a_stats, b_stats = NetStats(), NetStats()
    a = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("node-a")),
                            a_stats)
    b = ReplicationListener(("127.0.0.1", 0), keyring, FrameAuth(NodeIdentity.generate("node-b")),
                            b_stats)

    async def ack(_sender: str | None, message: Message) -> Message:
        assert isinstance(message, PushBatch)
        return PushAck(tuple(0 for _ in message.records))

    b.handler = ack
    await a.start()
    await b.start()
    try:
        meter = ByteMeter()
        batch = PushBatch((record(1).encode(), record(2).encode()), forward=True)
        await a.channel.request(PeerRef("node-b", b.transport.local_addr), batch, 5.0, meter)
        # What A sent is what B received, each sealed frame after its 4-byte length prefix
        # (the frame carries A's node id too, which re-encoding the message left out).
        assert meter.requests == 1
        assert meter.sent == a_stats.sent_bytes["tcp"] + LENGTH_BYTES == \
            b_stats.received_bytes["tcp"] + LENGTH_BYTES
        assert meter.received == a_stats.received_bytes["tcp"] + LENGTH_BYTES == \
            b_stats.sent_bytes["tcp"] + LENGTH_BYTES
    finally:
        await a.stop()
        await b.stop()
