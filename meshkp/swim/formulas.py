"""The scaling formulas of SWIM/Lifeguard as free functions (memberlist util.go, suspicion.go).

Durations are seconds. Each function reproduces memberlist's rounding so the tables in
tests/unit/test_swim_formulas.py can be checked against memberlist's own tests.
"""

from __future__ import annotations

import math

# memberlist pushPullScaleThreshold: the 33rd node doubles the push-pull interval, the 65th
# triples it, so the cluster-wide TCP state-sync rate stays roughly flat as n grows.
PUSH_PULL_SCALE_THRESHOLD = 32


def suspicion_timeout(suspicion_mult: int, n: int, interval: float) -> float:
    """Minimum suspicion time: mult * max(1, log10(n)) * interval (memberlist suspicionTimeout)."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    # memberlist keeps the scale at millisecond precision (int(node_scale * 1000)).
    return suspicion_mult * math.floor(node_scale * 1000) * interval / 1000


def suspicion_max_timeout(suspicion_mult: int, max_mult: int, n: int, interval: float) -> float:
    """Lifeguard's starting (maximum) suspicion time: max_mult times the minimum."""
    return max_mult * suspicion_timeout(suspicion_mult, n, interval)


def suspicion_confirmations_wanted(suspicion_mult: int, n: int) -> int:
    """k, the confirmations that drive the timer to its minimum (memberlist suspectNode).

    k = suspicion_mult - 2, so the nominal timeout is reached two probe intervals early; 0 when
    the cluster is too small to supply k independent confirmers (n minus us and the suspect).
    """
    k = suspicion_mult - 2
    return 0 if n - 2 < k else max(0, k)


def remaining_suspicion_time(
    confirmations: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Seconds left before a suspect is declared dead (Lifeguard §4.2, memberlist suspicion.go).

    The timeout decays logarithmically from max to min as the number of independent
    confirmations goes from 0 to k; the result is negative when the deadline has passed.
    """
    if k < 1:
        return min_timeout - elapsed
    frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = max_timeout - frac * (max_timeout - min_timeout)
    timeout = math.floor(1000.0 * raw) / 1000.0  # memberlist rounds down to whole milliseconds
    return max(timeout, min_timeout) - elapsed


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """Times one broadcast is sent: mult * ceil(log10(n + 1)) (memberlist retransmitLimit)."""
    return retransmit_mult * math.ceil(math.log10(n + 1))


def push_pull_scale(interval: float, n: int) -> float:
    """Push-pull interval for n nodes: unchanged up to 32, then +1x per doubling (pushPullScale)."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0
    return multiplier * interval


def gossip_convergence_fraction(
    rounds: float, n: int, fanout: int, loss: float = 0.0, failed: float = 0.0
) -> float:
    """Serf's convergence model: fraction of n nodes that know a rumour after `rounds` gossips.

    From Serf's convergence simulator (website _simulator.js): a logistic epidemic with contact
    rate (fanout / n) * (1 - loss) * (1 - failed) * 0.5.
    """
    contact = (fanout / n) * (1 - loss) * (1 - failed) * 0.5
    infected = n / (1 + (n + 1) * math.exp(-contact * n * rounds))
    return infected / n


def gossip_convergence_time(
    n: int, fanout: int, interval: float, loss: float = 0.0, target: float = 0.9999
) -> float:
    """Seconds until Serf's model predicts `target` of the cluster has a rumour."""
    if not 0 < target < 1:
        raise ValueError(f"target must be within (0, 1), got {target}")
    contact = (fanout / n) * (1 - loss) * 0.5
    # Solve n / (1 + (n+1) e^{-c n r}) = target * n for r.
    rounds = -math.log((1 / target - 1) / (n + 1)) / (contact * n)
    return max(0.0, rounds) * interval
