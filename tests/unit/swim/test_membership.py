"""State transitions: incarnation rules, refutation, suspicion timeouts, leave, forget, reclaim."""

from meshkp.net.wire import Frame, encode_frame
from meshkp.swim.effects import SendUdp
from meshkp.swim.fields import MAX_COUNTER, MAX_INCARNATION_JUMP
from meshkp.swim.messages import (
    Ack,
    Alive,
    Dead,
    Leave,
    MemberRecord,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    decode_message,
)
from meshkp.swim.types import Status

from .helpers import addr, changes, drain, know, make, run, sent, udp


def status(s, node):  # type: ignore[no-untyped-def]
    m = s.member(node)
    return None if m is None else m.status


def test_new_member_is_added_and_rebroadcast() -> None:
    s = make("a")
    effects = s.handle(0.0, addr("b"), Alive("b", addr("b"), 3, {"http": "h:1"}))
    assert changes(effects) == [("b", None, Status.ALIVE)]
    assert s.member("b").meta == {"http": "h:1"}  # type: ignore[union-attr]
    assert "b" in s.ms.queue


def test_suspicion_is_refuted_by_a_higher_incarnation_only() -> None:
    s = make("a")
    know(s, "b", "c")
    assert changes(s.handle(1.0, addr("c"), Suspect("b", 1, "c"))) == [
        ("b", Status.ALIVE, Status.SUSPECT)]
    assert changes(s.handle(1.1, addr("c"), Alive("b", addr("b"), 1, {}))) == []
    assert status(s, "b") == Status.SUSPECT
    assert changes(s.handle(1.2, addr("b"), Alive("b", addr("b"), 2, {}))) == [
        ("b", Status.SUSPECT, Status.ALIVE)]


def test_stale_news_is_ignored() -> None:
    s = make("a")
    know(s, "b", inc=5)
    for stale in (Suspect("b", 4, "c"), Dead("b", 4, "c"), Leave("b", 4),
                  Alive("b", addr("b"), 5, {})):
        assert s.handle(1.0, addr("c"), stale) == []
    assert status(s, "b") == Status.ALIVE
    # News about a node we never heard of does not create it, except alive.
    assert s.handle(1.0, addr("c"), Suspect("zz", 1, "c")) == []
    assert s.member("zz") is None


def test_a_node_refutes_suspicion_and_death_of_itself() -> None:
    s = make("a")
    s.handle(0.0, addr("b"), Suspect("a", 1, "b"))
    assert s.incarnation == 2
    assert status(s, "a") == Status.ALIVE
    assert s.health_score == 1  # being accused hints that we are the slow one
    s.handle(0.0, addr("b"), Dead("a", 7, "b"))
    assert s.incarnation == 8
    reply = s.handle(0.1, addr("b"), Ping(1, "a", "b", addr("b")))
    assert (addr("b"), Alive("a", addr("a"), 8, {})) in sent(reply, Alive)


def test_a_stale_accusation_reasserts_the_current_alive() -> None:
    s = make("a")
    s.handle(0.0, addr("b"), Suspect("a", 1, "b"))
    drain(s, 0.0)
    # b missed our refutation and probes us with its old accusation attached.
    reply = s.handle(5.0, addr("b"), Suspect("a", 1, "b"))
    assert s.incarnation == 2  # no new incarnation needed
    reply += s.handle(5.0, addr("b"), Ping(9, "a", "b", addr("b")))
    assert (addr("b"), Alive("a", addr("a"), 2, {})) in sent(reply, Alive)


def five_node_view():  # type: ignore[no-untyped-def]
    s = make("a")
    know(s, "b", "c", "d", "e")  # n = 5: k = 2 confirmations, min 4 s, max 24 s
    return s


def test_suspect_becomes_dead_after_the_lifeguard_timeout_and_a_final_probe() -> None:
    s = five_node_view()
    s.handle(10.0, addr("c"), Suspect("b", 1, "c"))
    assert s.ms.suspicions["b"].deadline == 10.0 + 24.0
    s.handle(10.0, addr("d"), Suspect("b", 1, "d"))
    s.handle(10.0, addr("e"), Suspect("b", 1, "e"))
    assert s.ms.suspicions["b"].deadline == 10.0 + 4.0  # decayed to the minimum
    effects = run(s, 14.0, alive="cde")
    assert status(s, "b") == Status.SUSPECT
    probe = [msgs for dest, msgs in udp(effects) if dest == addr("b") and
             any(isinstance(m, Ping) for m in msgs) and isinstance(msgs[0], Suspect)]
    assert probe, "a final probe carrying the accusation goes to b"
    assert len({r.target for _, r in sent(effects, PingReq)}) == 1
    final = run(s, 15.0, alive="cde")
    assert ("b", Status.SUSPECT, Status.DEAD) in changes(final)
    assert sent(final, Dead) or s.ms.queue.transmits("b") == 0


def test_memberlist_mode_declares_dead_when_the_timer_runs_out() -> None:
    s = make("a", final_probe=False)
    know(s, "b", "c", "d", "e")
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"))
    assert status(s, "b") == Status.SUSPECT
    assert ("b", Status.SUSPECT, Status.DEAD) in changes(run(s, 24.0))


def test_an_answered_final_probe_saves_the_suspect() -> None:
    s = five_node_view()
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"))
    timer = s.ms.suspicions["b"]
    while timer.verify_seq is None:
        now = s.next_deadline()
        assert now < 30.0
        run(s, now, alive="cde")
    seq = timer.verify_seq
    s.handle(now + 0.1, addr("b"), Ack(seq))
    assert timer.verify_seq is None  # the ack alone re-arms the timer
    s.handle(now + 0.1, addr("b"), Alive("b", addr("b"), 2, {}))
    assert status(s, "b") == Status.ALIVE
    assert not [c for c in changes(run(s, 60.0, alive="bcde")) if c[2] == Status.DEAD]


def test_a_suspicion_at_a_higher_incarnation_restarts_the_timer() -> None:
    s = five_node_view()
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"))
    # b refuted (incarnation 2) but we missed it; now d suspects b at incarnation 2.
    s.handle(20.0, addr("d"), Suspect("b", 2, "d"))
    timer = s.ms.suspicions["b"]
    assert (timer.start, timer.confirmations) == (20.0, 0)
    assert s.member("b").incarnation == 2  # type: ignore[union-attr]
    assert status(s, "b") == Status.SUSPECT


def test_merged_suspicion_is_not_a_confirmation() -> None:
    s = five_node_view()
    s.handle(0.0, addr("c"), Suspect("b", 1, "c"))
    pp = s.local_push_pull(join=False, reply=True)  # someone who also suspects b
    s.handle(1.0, addr("d"), pp)
    assert s.ms.suspicions["b"].confirmations == 0


def test_graceful_leave_is_left_not_dead() -> None:
    a = make("a")
    know(a, "b", "c")
    effects = a.leave(5.0)
    assert ("a", Status.ALIVE, Status.LEFT) in changes(effects)
    leaves = sent(effects, Leave)
    assert leaves and all(m == Leave("a", 2) for _, m in leaves)
    assert not [m for _, m in sent(run(a, 20.0, alive="bc"), Ping)]  # no more probing
    assert a.leave(6.0) == []
    a.handle(7.0, addr("b"), Suspect("a", 2, "b"))
    assert a.incarnation == 2  # and does not refute any more

    b = make("b")
    know(b, "a", "c")
    assert changes(b.handle(6.0, addr("a"), Leave("a", 2))) == [("a", Status.ALIVE, Status.LEFT)]
    b.handle(6.1, addr("c"), Dead("a", 2, "c"))
    assert status(b, "a") == Status.LEFT


def test_a_leave_upgrades_dead_to_left() -> None:
    b = make("b")
    know(b, "a")
    b.handle(1.0, addr("c"), Dead("a", 1, "c"))
    assert changes(b.handle(2.0, addr("a"), Leave("a", 2))) == [("a", Status.DEAD, Status.LEFT)]


def test_leave_broadcast_completes() -> None:
    a = make("a")
    know(a, "b", "c", "d")
    a.leave(0.0)
    assert not a.leave_broadcast_done
    run(a, 10.0, alive="bcd")
    assert a.leave_broadcast_done


def test_dead_members_are_forgotten_after_the_configured_time() -> None:
    s = make("a", gossip_to_the_dead_time=5.0, dead_node_forget_time=60.0)
    know(s, "b", "c")
    s.handle(0.0, addr("c"), Dead("b", 1, "c"))
    run(s, 50.0, alive="c")
    assert status(s, "b") == Status.DEAD
    run(s, 70.0, alive="c")
    assert s.member("b") is None
    assert status(s, "c") == Status.ALIVE


def test_an_address_conflict_is_refused_until_the_old_owner_is_dead() -> None:
    s = make("a", dead_node_reclaim_time=30.0)
    know(s, "b")
    other = ("10.9.9.9", 7946)
    assert s.handle(1.0, other, Alive("b", other, 9, {})) == []
    assert s.stats.address_conflicts == 1
    s.handle(2.0, addr("c"), Dead("b", 1, "c"))
    assert s.handle(10.0, other, Alive("b", other, 9, {})) == []  # dead, but not long enough
    effects = s.handle(40.0, other, Alive("b", other, 1, {}))
    assert changes(effects) == [("b", Status.DEAD, Status.ALIVE)]
    assert s.member("b").addr == other  # type: ignore[union-attr]


def test_reconnect_pings_a_dead_member_with_its_death_notice() -> None:
    s = make("a")
    know(s, "b", "c")
    s.handle(0.0, addr("c"), Dead("b", 1, "c"))
    frames = [msgs for dest, msgs in udp(run(s, 31.0, alive="c")) if dest == addr("b")]
    assert any(isinstance(m[0], Dead) and isinstance(m[1], Ping) for m in frames)


def test_meta_update_bumps_the_incarnation() -> None:
    s = make("a")
    drain(s, 0.0)
    s.update_meta(1.0, {"http": "10.0.0.1:11371"})
    assert s.incarnation == 2
    reply = s.handle(1.0, addr("b"), Ping(1, "a", "b", addr("b")))
    assert (addr("b"), Alive("a", addr("a"), 2, {"http": "10.0.0.1:11371"})) in sent(reply, Alive)
    b = make("b")
    know(b, "a")
    assert changes(b.handle(2.0, addr("a"), Alive("a", addr("a"), 2, {"http": "x"}))) == [
        ("a", Status.ALIVE, Status.ALIVE)]


def test_udp_effects_only_carry_single_messages_or_compounds() -> None:
    s = make("a")
    know(s, *[f"n{i}" for i in range(40)])
    for e in run(s, 5.0, alive=[f"n{i}" for i in range(40)]):
        if isinstance(e, SendUdp):
            assert e.message.TYPE != 9  # push-pull never goes by UDP


def test_an_absurd_incarnation_jump_is_refused_and_counted() -> None:
    # Red-team finding 1: Suspect(a, 2**63 - 1) made a refute to 2**63, above the wire maximum.
    s = make("a")
    know(s, "b", inc=5)
    top = MAX_COUNTER
    for forged in (Suspect("a", top, "b"), Dead("a", top, "b"), Alive("a", addr("a"), top, {}),
                   Suspect("b", top, "c"), Dead("b", top, "c"), Leave("b", top),
                   Alive("b", addr("b"), top, {})):
        s.handle(1.0, addr("c"), forged)
    assert s.incarnation == 1
    assert s.member("b").incarnation == 5  # type: ignore[union-attr]
    assert status(s, "b") == Status.ALIVE
    assert s.stats.incarnation_jumps_refused == 7
    # A plausible step is still news.
    s.handle(2.0, addr("c"), Suspect("b", 5 + MAX_INCARNATION_JUMP, "c"))
    assert status(s, "b") == Status.SUSPECT


def test_refutation_never_exceeds_the_wire_maximum() -> None:
    s = make("a")
    s.ms.local.incarnation = MAX_COUNTER - 1
    s.handle(0.0, addr("b"), Suspect("a", MAX_COUNTER, "b"))
    assert s.incarnation == MAX_COUNTER
    s.handle(0.1, addr("b"), Dead("a", MAX_COUNTER, "b"))
    assert s.incarnation == MAX_COUNTER
    s.update_meta(0.2, {"http": "h:1"})
    assert s.incarnation == MAX_COUNTER
    for effect in s.tick(1.0):  # everything we send still decodes at our peers
        if isinstance(effect, SendUdp):
            encode_frame(Frame(effect.message.TYPE, effect.message.to_map()), 1400)
            decode_message(effect.message.TYPE, effect.message.to_map())


def test_a_push_pull_reply_may_raise_us_however_far() -> None:
    # After a restart without DATA_DIR/incarnation, our peers' record of us is the truth.
    s = make("a")
    far = 10 * MAX_INCARNATION_JUMP
    reply = PushPull("b", False, True, (MemberRecord("a", addr("a"), far, Status.DEAD, {}),), b"")
    s.handle(0.0, addr("b"), reply)
    assert s.incarnation == far + 1
    assert s.stats.incarnation_jumps_refused == 0
