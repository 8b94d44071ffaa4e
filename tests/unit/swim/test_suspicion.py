"""Lifeguard suspicion decay (memberlist suspicion_test.go TestSuspicion_Timer, in fake time)."""

import pytest

from meshkp.swim.suspicion import Suspicion

K, LOW, HIGH = 3, 0.5, 2.0


@pytest.mark.parametrize(
    ("confirmers", "new_info", "expected"),
    [
        ([], [], HIGH),
        (["me", "foo"], [False, True], 1.25),
        (["me", "foo", "foo", "foo"], [False, True, False, False], 1.25),
        (["me", "foo", "bar"], [False, True, True], 0.811),  # memberlist: ~810 ms
        (["me", "foo", "bar", "baz"], [False, True, True, True], LOW),
        (["me", "foo", "bar", "baz", "zoo"], [False, True, True, True, False], LOW),
    ],
)
def test_timer_decays_with_independent_confirmations(
    confirmers: list[str], new_info: list[bool], expected: float
) -> None:
    s = Suspicion("me", K, LOW, HIGH, start=100.0)
    for i, (who, new) in enumerate(zip(confirmers, new_info, strict=True)):
        # Confirmations arrive 25 ms apart; the total timeout must not accumulate that delay.
        assert s.confirm(who, now=100.0 + 0.025 * (i + 1)) is new
    assert s.deadline == pytest.approx(100.0 + expected, abs=1e-6)
    assert not s.expired(100.0 + expected - 0.001)
    assert s.expired(100.0 + expected)


def test_a_late_confirmation_makes_it_due_immediately() -> None:
    s = Suspicion("me", 1, 0.1, 30.0, start=0.0)
    assert s.confirm("foo", now=0.2)
    assert s.expired(0.2)  # deadline 0.1 is already past


def test_without_confirmers_the_minimum_applies() -> None:
    s = Suspicion("me", 0, 4.0, 24.0, start=10.0)
    assert s.deadline == 14.0
    assert not s.confirm("other", now=11.0)
    assert s.confirmations == 0


def test_final_probe_keeps_its_own_deadline() -> None:
    s = Suspicion("me", 3, 0.5, 2.0, start=0.0)
    s.verify_seq, s.deadline = 42, 3.0
    assert s.confirm("foo", now=2.5)
    assert s.deadline == 3.0
