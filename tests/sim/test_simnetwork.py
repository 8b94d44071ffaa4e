"""SimNetwork faults: loss, delay and reordering, duplicates, partitions, pauses, keys, TCP."""

from __future__ import annotations

from collections import Counter

import pytest

from meshkp.clock import FakeClock
from meshkp.net.addr import Addr
from meshkp.sim.codec import DEFAULT_KEY, make_codec
from meshkp.sim.network import PAUSED_BUFFER_DATAGRAMS, SimNetwork
from meshkp.swim.messages import Ack, Alive, Message, PushPull

A: Addr = ("10.0.0.1", 7946)
B: Addr = ("10.0.0.2", 7946)
C: Addr = ("10.0.0.3", 7946)


class Recorder:
    """An endpoint that records what arrives and answers push-pulls with a fixed reply."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.datagrams: list[tuple[float, Addr, Message]] = []
        self.replies: list[Message] = []
        self.resumed = 0

    def on_datagram(self, src: Addr, message: Message, sender: str | None) -> None:
        self.datagrams.append((self.clock.now(), src, message))

    def on_tcp_request(self, src: Addr, message: Message, sender: str | None) -> Message | None:
        return PushPull("server", join=False, reply=True, members=())

    def on_tcp_reply(self, message: Message, sender: str | None) -> None:
        self.replies.append(message)

    def on_resume(self) -> None:
        self.resumed += 1

    @property
    def seqs(self) -> list[int]:
        return [m.seq for _, _, m in self.datagrams if isinstance(m, Ack)]


def network(seed: int = 0, keys: dict[Addr, list[bytes]] | None = None,
            **faults: float) -> tuple[FakeClock, SimNetwork, dict[Addr, Recorder]]:
    clock = FakeClock()
    net = SimNetwork(clock, seed, **faults)
    hosts = {}
    for addr in (A, B, C):
        hosts[addr] = Recorder(clock)
        net.attach(addr, hosts[addr], make_codec((keys or {}).get(addr, [DEFAULT_KEY])))
    return clock, net, hosts


def test_delivery_after_delay() -> None:
    clock, net, hosts = network(delay=0.01)
    net.send_udp(A, B, Ack(1))
    clock.advance(0.009)
    assert hosts[B].datagrams == []
    clock.advance(0.002)
    assert hosts[B].datagrams == [(0.01, A, Ack(1))]
    assert net.stats.bytes_sent[A] > 44


def test_seeded_loss_is_reproducible_and_near_its_rate() -> None:
    counts = []
    for _ in range(2):
        clock, net, hosts = network(seed=42, loss=0.3)
        for i in range(2000):
            net.send_udp(A, B, Ack(i))
        clock.advance(1.0)
        counts.append(hosts[B].seqs)
    assert counts[0] == counts[1]
    assert 0.66 < len(counts[0]) / 2000 < 0.74
    assert net.stats.dropped["loss"] == 2000 - len(counts[0])


def test_jitter_reorders_and_duplicates_repeat() -> None:
    clock, net, hosts = network(seed=1, jitter=0.05, duplicate=0.2)
    for i in range(200):
        net.send_udp(A, B, Ack(i))
    clock.advance(1.0)
    seqs = hosts[B].seqs
    assert seqs != sorted(seqs)  # reordered
    dup = sum(c - 1 for c in Counter(seqs).values())
    assert dup == net.stats.duplicated > 0


def test_partition_blocks_both_ways_until_healed() -> None:
    clock, net, hosts = network()
    net.partition([A], [B])  # C is in the implicit third group
    net.send_udp(A, B, Ack(1))
    net.send_udp(B, A, Ack(2))
    net.send_udp(A, C, Ack(3))
    clock.advance(1.0)
    assert hosts[A].datagrams == hosts[B].datagrams == hosts[C].datagrams == []
    assert net.stats.dropped["partition"] == 3
    net.heal()
    net.send_udp(A, B, Ack(4))
    clock.advance(1.0)
    assert hosts[B].seqs == [4]


def test_a_paused_process_reads_its_buffer_in_order_on_resume() -> None:
    clock, net, hosts = network()
    net.pause(B)
    for i in range(PAUSED_BUFFER_DATAGRAMS + 10):
        net.send_udp(A, B, Ack(i))
    clock.advance(5.0)
    assert hosts[B].datagrams == []
    assert net.stats.dropped["paused_buffer_full"] == 10
    net.resume(B)
    assert hosts[B].seqs == list(range(PAUSED_BUFFER_DATAGRAMS))
    assert hosts[B].resumed == 1


def test_a_foreign_key_is_dropped_and_counted() -> None:
    clock, net, hosts = network(keys={C: [b"c" * 32]})
    net.send_udp(C, A, Ack(1))
    net.send_udp(A, C, Ack(2))
    clock.advance(1.0)
    assert hosts[A].datagrams == hosts[C].datagrams == []
    assert net.stats.dropped["decrypt"] == 2


def test_oversize_frames_are_refused_at_the_sender() -> None:
    clock, net, hosts = network(frame_limit=300)
    net.send_udp(A, B, Alive("a", A, 1, {"pad": "x" * 300}))
    net.send_udp(A, B, Alive("a", A, 1, {"pad": "x" * 100}))
    clock.advance(1.0)
    assert len(hosts[B].datagrams) == 1
    assert net.stats.oversize == 1


def test_tcp_exchange_and_its_failures() -> None:
    clock, net, hosts = network(delay=0.01)
    request = PushPull("client", join=True, reply=False, members=())
    net.send_tcp(A, B, request, 1.0, hosts[A].on_tcp_reply)
    clock.advance(1.0)
    assert [m.source for m in hosts[A].replies] == ["server"]  # type: ignore[attr-defined]

    net.detach(C)  # crashed: connection refused
    net.send_tcp(A, C, request, 1.0, hosts[A].on_tcp_reply)
    net.partition([A], [B])  # partitioned: times out
    net.send_tcp(A, B, request, 1.0, hosts[A].on_tcp_reply)
    clock.advance(2.0)
    assert net.stats.tcp_failed == 2
    assert len(hosts[A].replies) == 1


@pytest.mark.parametrize("pause_for", [0.5, 5.0])
def test_tcp_to_a_paused_server_answers_on_resume_within_the_timeout_only(pause_for: float) -> None:
    clock, net, hosts = network(delay=0.01)
    net.pause(B)
    net.send_tcp(A, B, PushPull("client", join=False, reply=False, members=()), 1.0,
                 hosts[A].on_tcp_reply)
    clock.advance(pause_for)
    net.resume(B)
    clock.advance(1.0)
    if pause_for < 1.0:
        assert len(hosts[A].replies) == 1
    else:
        assert hosts[A].replies == [] and net.stats.dropped["tcp_timeout"] == 1
