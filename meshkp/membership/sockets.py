"""SocketTransport: the GossipTransport of a real node, sealed UDP and TCP on one port.

Every frame is signed by this node's identity and checked for its sender and for replay
(meshkp/net/frameauth.py). UDP carries probes and gossip (one sealed datagram of at most
`udp_frame_bytes`), TCP carries push-pull (length-prefixed sealed frames, bounded by TcpLimits).
Both listen on the same port number, as memberlist's NetTransport does. Frames are opened by
meshkp/net and decoded into SWIM messages here; a frame that fails either step is counted in
NetStats and dropped.
"""

from __future__ import annotations

import logging
import socket

from meshkp.errors import ConfigError, PeerUnreachable, WireError
from meshkp.membership.transport import GossipReceiver
from meshkp.net.addr import Addr, format_addr
from meshkp.net.codec import SealedCodec
from meshkp.net.crypto import Keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.stats import NetStats
from meshkp.net.tcp import TcpLimits, TcpTransport
from meshkp.net.udp import UdpTransport
from meshkp.net.wire import Frame
from meshkp.swim.messages import MESSAGE_TYPES, Message, PushPull, decode_message

log = logging.getLogger(__name__)

UDP_TYPES = frozenset(t for t in MESSAGE_TYPES if t != PushPull.TYPE)
TCP_TYPES = frozenset({PushPull.TYPE})
# With gossip_port 0 the OS picks a free UDP port, which may be taken for TCP: try a few.
BIND_ATTEMPTS = 20


def outbound_ip(bind_host: str) -> str:
    """The IP other nodes should use for us: bind_host if specific, else the default route's."""
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    # connect() on UDP sends nothing; it only asks the kernel which source address it would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _frame(message: Message) -> Frame:
    return Frame(message.TYPE, message.to_map())


class SocketTransport:
    """UDP + TCP gossip listeners on `bind_host:port`, advertised as `advertise_host` or ours."""

    def __init__(
        self,
        bind_host: str,
        port: int,
        keyring: Keyring,
        auth: FrameAuth,
        stats: NetStats,
        *,
        advertise_host: str | None = None,
        udp_frame_bytes: int,
        tcp: TcpLimits,
    ) -> None:
        self._bind_host = bind_host
        self._port = port
        self._advertise_host = advertise_host
        self._stats = stats
        self._tcp_limits = tcp
        self._udp_codec = SealedCodec(keyring, udp_frame_bytes, UDP_TYPES.__contains__, auth=auth)
        self._tcp_codec = SealedCodec(keyring, tcp.frame_bytes, TCP_TYPES.__contains__, auth=auth)
        self._receiver: GossipReceiver | None = None
        self._udp: UdpTransport | None = None
        self._tcp: TcpTransport | None = None

    async def start(self, receiver: GossipReceiver) -> Addr:
        """Bind UDP, then TCP on the same port number; with port 0, retry until both fit."""
        self._receiver = receiver
        attempts = BIND_ATTEMPTS if self._port == 0 else 1
        where = f"{self._bind_host}:{self._port}"
        for attempt in range(1, attempts + 1):
            udp = UdpTransport((self._bind_host, self._port), self._udp_codec, self._on_udp,
                               self._stats)
            try:
                udp_addr = await udp.start()
            except OSError as exc:
                raise ConfigError(f"cannot bind gossip UDP {where}: {exc.strerror or exc}; "
                                  "pick another --gossip-port") from None
            tcp = TcpTransport((self._bind_host, udp_addr[1]), self._tcp_codec, self._on_tcp,
                               self._stats, self._tcp_limits)
            try:
                await tcp.start()
            except OSError as exc:
                await udp.stop()
                if attempt == attempts:
                    raise ConfigError(
                        f"cannot bind gossip TCP {self._bind_host}:{udp_addr[1]}: "
                        f"{exc.strerror or exc}; pick another --gossip-port (replication "
                        "listens on gossip port + 1 by default)") from None
                continue
            self._udp, self._tcp = udp, tcp
            host = self._advertise_host or outbound_ip(self._bind_host)
            return host, udp_addr[1]
        raise ConfigError(f"cannot bind gossip listeners on {where}")  # not reached

    async def stop(self) -> None:
        """Close the TCP listener, then the UDP socket (idempotent)."""
        self._receiver = None
        for transport in (self._tcp, self._udp):
            if transport is not None:
                await transport.stop()

    def send_packet(self, addr: Addr, message: Message) -> None:
        if self._udp is not None:
            self._udp.send(addr, _frame(message))

    async def exchange(self, addr: Addr, message: Message,
                       timeout: float) -> tuple[Message, str | None]:
        tcp = self._tcp
        if tcp is None:
            raise PeerUnreachable("gossip transport is not started")
        reply = await tcp.request(addr, _frame(message), timeout)
        return decode_message(reply.type, reply.body), reply.sender

    def _on_udp(self, addr: Addr, frame: Frame) -> None:
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self._stats.drop("udp", exc.reason, format_addr(addr), str(exc))
            return
        if self._receiver is not None:
            self._receiver.on_packet(addr, message, frame.sender)

    async def _on_tcp(self, addr: Addr, frame: Frame) -> Frame | None:
        try:
            message = decode_message(frame.type, frame.body)
        except WireError as exc:
            self._stats.drop("tcp", exc.reason, format_addr(addr), str(exc))
            return None
        if self._receiver is None:
            return None
        reply = self._receiver.on_stream(addr, message, frame.sender)
        return _frame(reply) if reply is not None else None
