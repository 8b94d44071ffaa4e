"""Lifeguard local-health awareness (memberlist awareness_test.go)."""

import pytest

from meshkp.swim.awareness import Awareness


@pytest.mark.parametrize(
    ("delta", "score", "timeout"),
    [(0, 0, 1.0), (-1, 0, 1.0), (-10, 0, 1.0), (1, 1, 2.0), (-1, 0, 1.0), (10, 7, 8.0),
     (-1, 6, 7.0), (-1, 5, 6.0), (-1, 4, 5.0), (-1, 3, 4.0), (-1, 2, 3.0), (-1, 1, 2.0),
     (-1, 0, 1.0), (-1, 0, 1.0)],
)
def test_score_is_clamped_and_scales_timeouts(delta: int, score: int, timeout: float) -> None:
    # One awareness shared by the whole table, like memberlist's sequential test.
    a = _shared
    a.apply_delta(delta)
    assert a.score == score
    assert a.scale(1.0) == timeout


_shared = Awareness(8)


def test_rejects_a_zero_multiplier() -> None:
    with pytest.raises(ValueError):
        Awareness(0)
