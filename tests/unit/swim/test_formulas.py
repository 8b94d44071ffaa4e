"""Table tests of the SWIM/Lifeguard formulas against memberlist's own test tables."""

import math

import pytest

from meshkp.swim.formulas import (
    gossip_convergence_fraction,
    gossip_convergence_time,
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_confirmations_wanted,
    suspicion_max_timeout,
    suspicion_timeout,
)


# memberlist util_test.go TestSuspicionTimeout: suspicionTimeout(3, n, 1s) / 3.
@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 1.0), (1, 1.0), (5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698),
     (1000, 3.0)],
)
def test_suspicion_timeout_scales_with_log10_n(n: int, expected: float) -> None:
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected, abs=1e-9)


# The LAN profile (mult 4, max mult 6, probe 1 s) at the sizes the bench reports.
@pytest.mark.parametrize(
    ("n", "low", "high"),
    [(10, 4.0, 24.0), (50, 6.792, 40.752), (200, 9.204, 55.224)],
)
def test_lan_suspicion_bounds(n: int, low: float, high: float) -> None:
    assert suspicion_timeout(4, n, 1.0) == pytest.approx(low)
    assert suspicion_max_timeout(4, 6, n, 1.0) == pytest.approx(high)


# memberlist TestRetransmitLimit plus the LAN sizes.
@pytest.mark.parametrize(
    ("mult", "n", "expected"),
    [(3, 0, 0), (3, 1, 3), (3, 99, 6), (4, 9, 4), (4, 10, 8), (4, 50, 8), (4, 99, 8),
     (4, 100, 12), (4, 200, 12), (4, 1000, 16)],
)
def test_retransmit_limit(mult: int, n: int, expected: int) -> None:
    assert retransmit_limit(mult, n) == expected


# memberlist TestPushPullScale: 1x up to 32 nodes, 2x to 64, 3x to 128.
@pytest.mark.parametrize(
    ("lo", "hi", "factor"), [(0, 32, 1), (33, 64, 2), (65, 128, 3), (129, 256, 4)]
)
def test_push_pull_scale(lo: int, hi: int, factor: int) -> None:
    for n in range(lo, hi + 1):
        assert push_pull_scale(30.0, n) == pytest.approx(30.0 * factor)


# memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime (min 2 s, max 30 s, k 3).
@pytest.mark.parametrize(
    ("n", "elapsed", "expected"),
    [(0, 0.0, 30.0), (1, 2.0, 14.0), (2, 3.0, 4.81), (3, 4.0, -2.0), (4, 5.0, -3.0),
     (5, 10.0, -8.0)],
)
def test_remaining_suspicion_time(n: int, elapsed: float, expected: float) -> None:
    assert remaining_suspicion_time(n, 3, elapsed, 2.0, 30.0) == pytest.approx(expected)


def test_remaining_suspicion_time_without_confirmers_is_the_minimum() -> None:
    assert remaining_suspicion_time(0, 0, 1.0, 4.0, 24.0) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("mult", "n", "k"), [(4, 1, 0), (4, 3, 0), (4, 4, 2), (4, 50, 2), (3, 3, 1), (2, 100, 0)]
)
def test_confirmations_wanted(mult: int, n: int, k: int) -> None:
    assert suspicion_confirmations_wanted(mult, n) == k


def test_serf_model_is_logistic_and_monotone() -> None:
    fractions = [gossip_convergence_fraction(r, 50, 3) for r in range(0, 40)]
    assert fractions[0] == pytest.approx(1 / 52)  # n / (1 + (n + 1)) at round 0
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[5] < fractions[6]
    assert fractions[-1] > 0.999


@pytest.mark.parametrize(("n", "loss"), [(10, 0.0), (50, 0.0), (200, 0.0), (50, 0.3)])
def test_serf_convergence_time_inverts_the_model(n: int, loss: float) -> None:
    t = gossip_convergence_time(n, 3, 0.2, loss=loss, target=0.9999)
    assert gossip_convergence_fraction(t / 0.2, n, 3, loss=loss) == pytest.approx(0.9999)
    # Loss slows convergence by exactly 1 / (1 - loss) in this model.
    if loss:
        base = gossip_convergence_time(n, 3, 0.2, target=0.9999)
        assert t == pytest.approx(base / (1 - loss))


def test_serf_convergence_rejects_a_target_of_one() -> None:
    with pytest.raises(ValueError):
        gossip_convergence_time(10, 3, 0.2, target=1.0)
    assert math.isfinite(gossip_convergence_time(10, 3, 0.2, target=0.5))
