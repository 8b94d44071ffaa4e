"""The failure detector: ping, ack, ping-req, nack, suspicion and Lifeguard health."""

from meshkp.swim.messages import Ack, Alive, Nack, Ping, PingReq, Suspect
from meshkp.swim.protocol import Swim
from meshkp.swim.types import Status

from .helpers import addr, changes, drain, know, make, run, sent, udp


def test_ping_is_acked_with_piggybacked_news() -> None:
    s = make("a")
    effects = s.handle(0.0, addr("b"), Ping(7, "a", "b", addr("b")))
    acks = sent(effects, Ack)
    assert acks == [(addr("b"), Ack(7, "a"))]  # the ack names who answered
    # The new node's own alive rides on the ack.
    assert sent(effects, Alive) == [(addr("b"), Alive("a", addr("a"), 1, {}))]


def test_ping_for_another_node_is_not_answered() -> None:
    s = make("a")
    assert s.handle(0.0, addr("b"), Ping(7, "someone-else", "b", addr("b"))) == []
    assert s.stats.misdirected_pings == 1
    # An empty target (a seed probe) is answered.
    assert sent(s.handle(0.0, addr("b"), Ping(8, "", "b", addr("b"))), Ack)


def first_probe(s: Swim, names: str) -> tuple[float, str, int]:
    """Run s until it sends its first ping; return (time, target name, seq)."""
    for _ in range(100):
        t = s.next_deadline()
        pings = sent(s.tick(t), Ping)
        if pings:
            (dest, ping), = pings
            assert ping.target in names and dest == addr(ping.target)
            return t, ping.target, ping.seq
    raise AssertionError("no probe")


def test_acked_probe_changes_nothing() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    s.handle(t + 0.1, addr(target), Ack(seq))
    effects = run(s, t + 1.0)
    assert not sent(effects, PingReq)
    assert changes(effects) == []
    assert s.health_score == 0


def test_unanswered_probe_goes_indirect_then_suspects() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    indirect = run(s, t + 0.5)
    reqs = sent(indirect, PingReq)
    assert len(reqs) == 3
    assert {r.target for _, r in reqs} == {target}
    assert all(r.seq == seq and r.nack for _, r in reqs)
    assert target not in {dest[0].split(".")[0] for dest, _ in reqs}
    final = run(s, t + 1.0)
    assert (target, Status.ALIVE, Status.SUSPECT) in changes(final)
    # No nacks from three asked members: we are probably the slow one (Lifeguard).
    assert s.health_score == 3


def test_nacks_prove_our_own_health() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    run(s, t + 0.5)
    for _ in range(3):
        s.handle(t + 0.7, addr("x"), Nack(seq))
    run(s, t + 1.0)
    assert s.member(target).status == Status.SUSPECT  # type: ignore[union-attr]
    assert s.health_score == 0


def test_poor_health_stretches_the_probe_interval() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    s.ms.awareness.apply_delta(3)
    t, _, _ = first_probe(s, "bcde")
    assert s.fd.next_probe_at == t + 4.0  # probe_interval * (score + 1)


def test_indirect_probe_ack_counts() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    run(s, t + 0.5)
    s.handle(t + 0.8, addr("c"), Ack(seq))  # relayed by a helper
    assert changes(run(s, t + 1.0)) == []


def test_ping_req_relays_the_ack() -> None:
    s = make("a")
    req = PingReq(41, "c", addr("c"), "b", addr("b"), nack=True)
    effects = s.handle(0.0, addr("b"), req)
    (dest, ping), = sent(effects, Ping)
    assert dest == addr("c") and ping.target == "c" and ping.source == "a"
    relayed = s.handle(0.1, addr("c"), Ack(ping.seq))
    assert sent(relayed, Ack) == [(addr("b"), Ack(41, "c"))]
    assert not sent(run(s, 1.0), Nack)  # acked: no nack later


def test_ping_req_nacks_when_the_target_is_silent() -> None:
    s = make("a")
    s.handle(0.0, addr("b"), PingReq(41, "c", addr("c"), "b", addr("b"), nack=True))
    late = run(s, 0.5)
    assert sent(late, Nack) == [(addr("b"), Nack(41))]
    s.handle(0.0, addr("b"), PingReq(42, "c", addr("c"), "b", addr("b"), nack=False))
    assert not sent(run(s, 1.5), Nack)


def test_probe_of_a_suspect_carries_the_accusation_first() -> None:
    s = make("a")
    know(s, "b")
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"))
    for _ in range(20):
        for dest, msgs in udp(s.tick(s.next_deadline())):
            if any(isinstance(m, Ping) for m in msgs):
                # First in the frame, so the refutation is queued before the ack is built.
                assert dest == addr("b")
                assert msgs[0] == Suspect("b", 1, "a") and isinstance(msgs[1], Ping)
                return
    raise AssertionError("b was never probed")


def test_ping_req_answers_carry_the_helpers_view_of_the_target() -> None:
    s = make("a")
    s.handle(0.0, addr("c"), Alive("c", addr("c"), 4, {}))
    s.handle(0.0, addr("b"), PingReq(41, "c", addr("c"), "b", addr("b"), nack=True))
    drain(s, 0.0)
    late = run(s, 0.5)
    # b may have missed c's refutation: the nack tells b what we know of c.
    (dest, msgs), = [(d, m) for d, m in udp(late) if d == addr("b")]
    assert msgs[:2] == [Nack(41), Alive("c", addr("c"), 4, {})]


def test_pending_ping_reqs_are_capped() -> None:
    s = make("a", max_pending_relays=2)
    for seq in range(3):
        s.handle(0.0, addr("b"), PingReq(seq, "c", addr("c"), "b", addr("b"), nack=True))
    assert s.stats.relays_refused == 1
    run(s, 1.0)  # the two pending ones expire and nack
    assert s.handle(1.0, addr("b"), PingReq(9, "c", addr("c"), "b", addr("b"), nack=True))


def test_an_ack_from_another_member_does_not_answer_the_probe() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    other = next(n for n in "bcde" if n != target)
    s.handle(t + 0.1, addr(other), Ack(seq, other))
    assert s.stats.acks_mismatched == 1
    assert sent(run(s, t + 0.6), PingReq)  # still unanswered: it goes indirect
    s.handle(t + 0.7, addr(target), Ack(seq, target))
    assert changes(run(s, t + 0.99)) == []  # the real answer counts: no suspicion at t + 1


def test_sequence_numbers_differ_between_process_lives() -> None:
    # Red-team finding 2: each process started at 1, so acks captured from an earlier life of
    # the prober answered the probes of the next one.
    lives = [make("a", seed=1).ms.next_seq() for _ in range(5)]  # same seed, fresh processes
    assert len(set(lives)) == 5
    assert all(seq < 2**63 and seq.bit_length() == 63 for seq in lives)


def test_an_ack_counts_only_from_the_member_probed_or_a_helper_asked() -> None:
    """Issue 12: the frame's proven sender is held to the probe. A holder of the cluster key
    acking for the target (in the target's name, from its own frame) answered the probe."""
    s = make("a")
    know(s, "b", "c", "d", "e", "f")
    t, target, seq = first_probe(s, "bcdef")
    s.handle(t + 0.1, addr("x"), Ack(seq, target), sender="mallory")
    assert s.stats.acks_refused == 1
    reqs = sent(run(s, t + 0.6), PingReq)
    helpers = {dest[0].split(".")[0] for dest, _ in reqs}
    outsider = next(n for n in "bcdef" if n != target and n not in helpers)
    s.handle(t + 0.7, addr(outsider), Ack(seq, target), sender=outsider)  # a member not asked
    assert s.stats.acks_refused == 2
    helper = sorted(helpers)[0]
    s.handle(t + 0.8, addr(helper), Ack(seq, target), sender=helper)  # relayed: counts
    assert changes(run(s, t + 0.99)) == []
    assert s.stats.acks_refused == 2


def test_a_direct_ack_from_the_target_counts() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    t, target, seq = first_probe(s, "bcde")
    s.handle(t + 0.1, addr(target), Ack(seq, target), sender=target)
    assert not sent(run(s, t + 0.6), PingReq)
    assert s.stats.acks_refused == 0


def test_a_relay_forwards_only_the_targets_own_ack() -> None:
    s = make("a")
    effects = s.handle(0.0, addr("b"), PingReq(41, "c", addr("c"), "b", addr("b"), nack=True))
    (_, ping), = sent(effects, Ping)
    assert not sent(s.handle(0.1, addr("x"), Ack(ping.seq, "c"), sender="mallory"), Ack)
    assert s.stats.acks_refused == 1
    relayed = s.handle(0.2, addr("c"), Ack(ping.seq, "c"), sender="c")
    assert sent(relayed, Ack) == [(addr("b"), Ack(41, "c"))]


def test_a_final_probe_is_answered_only_by_the_suspect_or_its_helpers() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e")
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"), sender="c")
    for _ in range(1000):
        due = s.next_deadline()
        effects = s.tick(due)
        final = [m for d, m in sent(effects, Ping) if m.target == "b"
                 and s.ms.suspicions.get("b") is not None
                 and s.ms.suspicions["b"].verify_seq == m.seq]
        if final:
            break
    else:
        raise AssertionError("no final probe of b")
    seq = final[0].seq
    assert not s.ms.verified(seq, "b", "mallory", due)
    assert s.stats.acks_refused == 1
    helper = sorted(s.ms.suspicions["b"].verify_helpers)[0]
    assert s.ms.verified(seq, "b", helper, due)


def test_nacks_count_once_per_helper_asked() -> None:
    s = make("a")
    know(s, "b", "c", "d", "e", "f")
    t, target, seq = first_probe(s, "bcdef")
    reqs = sent(run(s, t + 0.5), PingReq)
    helpers = sorted(dest[0].split(".")[0] for dest, _ in reqs)
    for _ in range(3):  # one helper's nack, three times, and a stranger's
        s.handle(t + 0.7, addr(helpers[0]), Nack(seq), sender=helpers[0])
    s.handle(t + 0.7, addr("x"), Nack(seq), sender="mallory")
    assert s.stats.nacks_refused == 3
    run(s, t + 1.0)
    assert s.health_score == 2  # two of three asked members sent no nack
