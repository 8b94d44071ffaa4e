"""SRV discovery against a real UDP/TCP DNS server on 127.0.0.1, and a hostile-input parser."""

import asyncio
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshkp.discovery.dns import SrvSeeds, query_srv
from meshkp.discovery.dnswire import (
    FLAG_QR,
    FLAG_TC,
    HEADER,
    TYPE_A,
    TYPE_AAAA,
    TYPE_SRV,
    build_query,
    encode_name,
    parse_resolv_conf,
    parse_srv_response,
)
from meshkp.errors import DiscoveryError

NAME = "_gossip._udp.meshkp.default.svc.cluster.local"


def rr(name: bytes, rtype: int, rdata: bytes) -> bytes:
    return name + struct.pack("!HHIH", rtype, 1, 30, len(rdata)) + rdata


def response(query: bytes, srv: list[tuple[int, int, int, str]], extra: dict[str, str],
             *, tc: bool = False, rcode: int = 0) -> bytes:
    """An answer as a Kubernetes DNS gives it: SRV answers, A/AAAA of targets in additional.
    The owner names use a compression pointer to the question (offset 12), as real servers do."""
    qid = struct.unpack_from("!H", query)[0]
    question = query[12:]
    answers = [
        rr(b"\xc0\x0c", TYPE_SRV, struct.pack("!HHH", p, w, port) + encode_name(target))
        for p, w, port, target in srv
    ]
    additional = []
    for host, ip in extra.items():
        if ":" in ip:
            additional.append(rr(encode_name(host), TYPE_AAAA, socket.inet_pton(socket.AF_INET6,
                                                                                 ip)))
        else:
            additional.append(rr(encode_name(host), TYPE_A, socket.inet_aton(ip)))
    flags = FLAG_QR | (FLAG_TC if tc else 0) | rcode
    head = HEADER.pack(qid, flags, 1, 0 if tc else len(answers), 0, 0 if tc else len(additional))
    if tc:
        return head + question
    return head + question + b"".join(answers) + b"".join(additional)


class FakeDns(asyncio.DatagramProtocol):
    """A real DNS server on loopback: UDP answers (optionally truncated) and TCP answers."""

    def __init__(self, srv: list[tuple[int, int, int, str]], extra: dict[str, str],
                 truncate_udp: bool = False, garbage: bool = False) -> None:
        self.srv, self.extra = srv, extra
        self.truncate_udp, self.garbage = truncate_udp, garbage
        self.udp_queries = 0
        self.tcp_queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.udp_queries += 1
        if self.garbage:
            self.transport.sendto(data[:2] + b"\x80\x00" + b"\xff" * 40, addr)  # type: ignore[attr-defined]
            return
        reply = response(data, self.srv, self.extra, tc=self.truncate_udp)
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

    async def tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tcp_queries += 1
        length = int.from_bytes(await reader.readexactly(2), "big")
        query = await reader.readexactly(length)
        reply = response(query, self.srv, self.extra)
        writer.write(len(reply).to_bytes(2, "big") + reply)
        await writer.drain()
        writer.close()


async def serve(fake: FakeDns) -> tuple[tuple[str, int], asyncio.BaseTransport, asyncio.Server]:
    loop = asyncio.get_running_loop()
    for _ in range(20):  # the UDP port the OS picked may be taken for TCP: try another
        transport, _ = await loop.create_datagram_endpoint(lambda: fake,
                                                           local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            server = await asyncio.start_server(fake.tcp, "127.0.0.1", port)
        except OSError:
            transport.close()
            continue
        return ("127.0.0.1", port), transport, server
    raise RuntimeError("no port free for both UDP and TCP")


SRV = [(10, 50, 7001, "pod-b.meshkp.default.svc.cluster.local"),
       (0, 50, 7000, "pod-a.meshkp.default.svc.cluster.local"),
       (10, 50, 7002, "localhost")]
EXTRA = {"pod-a.meshkp.default.svc.cluster.local": "10.1.0.5",
         "pod-b.meshkp.default.svc.cluster.local": "fd00::7"}


async def test_srv_targets_with_their_ports_in_priority_order() -> None:
    fake = FakeDns(SRV, EXTRA)
    ns, transport, server = await serve(fake)
    try:
        addrs = await SrvSeeds(NAME, [ns]).resolve()
    finally:
        transport.close()
        server.close()
    # pod-a first (priority 0); localhost has no additional record, so it is resolved locally.
    assert addrs[0] == ("10.1.0.5", 7000)
    assert set(addrs) >= {("fd00::7", 7001), ("127.0.0.1", 7002)}
    assert fake.tcp_queries == 0


async def test_truncated_udp_answer_falls_back_to_tcp() -> None:
    fake = FakeDns(SRV, EXTRA, truncate_udp=True)
    ns, transport, server = await serve(fake)
    try:
        answer = await query_srv(NAME, [ns])
    finally:
        transport.close()
        server.close()
    assert fake.udp_queries == 1 and fake.tcp_queries == 1
    assert sorted(r.port for r in answer.records) == [7000, 7001, 7002]


async def test_garbage_or_silent_nameservers_give_no_seeds_and_no_exception() -> None:
    fake = FakeDns(SRV, EXTRA, garbage=True)
    ns, transport, server = await serve(fake)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(DiscoveryError):
            await query_srv(NAME, [ns])
        assert await SrvSeeds(NAME, [ns]).resolve() == []
        assert await SrvSeeds(NAME, []).resolve() == []
        # Second server answers after the first stays silent: failover works.
        good = FakeDns(SRV, EXTRA)
        good_ns, good_t, good_s = await serve(good)
        try:
            addrs = await SrvSeeds(NAME, [silent.getsockname(), good_ns], timeout=0.3).resolve()
        finally:
            good_t.close()
            good_s.close()
        assert ("10.1.0.5", 7000) in addrs
    finally:
        silent.close()
        transport.close()
        server.close()


def test_nxdomain_is_reported_not_raised() -> None:
    query = build_query(7, NAME)
    answer = parse_srv_response(response(query, [], {}, rcode=3), 7)
    assert answer.rcode == 3 and answer.records == []


def test_parser_refuses_wrong_id_pointer_loops_and_truncation() -> None:
    query = build_query(9, NAME)
    good = response(query, SRV[:1], {})
    with pytest.raises(DiscoveryError):
        parse_srv_response(good, 10)
    for cut in range(len(good) - 1):
        try:
            parse_srv_response(good[:cut], 9)
        except DiscoveryError:
            continue
    # An answer whose owner name is a pointer to itself.
    head = HEADER.pack(9, FLAG_QR, 0, 1, 0, 0)
    loop = head + b"\xc0\x0c" + struct.pack("!HHIH", TYPE_SRV, 1, 0, 0)
    with pytest.raises(DiscoveryError):
        parse_srv_response(loop, 9)
    with pytest.raises(DiscoveryError):
        parse_srv_response(HEADER.pack(9, FLAG_QR, 5000, 0, 0, 0), 9)


def test_encode_name_bounds() -> None:
    assert encode_name("a.b.") == b"\x01a\x01b\x00"
    with pytest.raises(DiscoveryError):
        encode_name("x" * 64 + ".local")
    with pytest.raises(DiscoveryError):
        encode_name(".".join(["abcdefgh"] * 40))


def test_parse_resolv_conf() -> None:
    text = "search svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n" \
           "nameserver bogus\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
    assert parse_resolv_conf(text) == ["10.96.0.10", "fe80::1", "1.1.1.1"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_responses_only_raise_discovery_error(tail: bytes) -> None:
    msg = HEADER.pack(1, FLAG_QR, 1, 2, 0, 1) + tail
    try:
        parse_srv_response(msg, 1)
    except DiscoveryError:
        pass
