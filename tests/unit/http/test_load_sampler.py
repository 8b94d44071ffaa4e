"""The load sampler: histogram quantiles as a table, and one window of requests, CPU and lag
turned into a summary (fake clocks, the real metrics collector)."""

from __future__ import annotations

import pytest

from meshkp.http.load import (
    READ_WINDOWS,
    Figures,
    LoadSampler,
    LoopLagProbe,
    client_load,
    operation,
    quantile,
    sample_quantile,
)
from meshkp.http.metrics import HttpMetrics

BOUNDS = (0.001, 0.01, 0.1)


@pytest.mark.parametrize(("q", "counts", "expected"), [
    (0.5, [0, 0, 0, 0], None),  # nothing answered
    (0.5, [10, 0, 0, 0], 0.0005),  # inside the first bucket, from 0
    (0.99, [100, 0, 0, 0], 0.00099),
    (0.5, [0, 10, 0, 0], 0.0055),  # halfway through (1 ms, 10 ms]
    (0.99, [50, 50, 0, 0], 0.001 + 0.009 * 49 / 50),
    (0.99, [0, 0, 0, 5], 0.1),  # in +Inf: the last finite bound
])
def test_quantile_interpolates_inside_its_bucket(q: float, counts: list[int],
                                                 expected: float | None) -> None:
    got = quantile(q, BOUNDS, counts)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_sample_quantile_is_the_nearest_rank() -> None:
    assert sample_quantile(0.99, []) is None
    assert sample_quantile(0.99, [0.3, 0.1, 0.2]) == 0.3
    assert sample_quantile(0.5, [float(i) for i in range(1, 101)]) == 50.0
    assert sample_quantile(0.99, [float(i) for i in range(1, 101)]) == 99.0


@pytest.mark.parametrize(("endpoint", "op", "name"), [
    ("/pks/lookup", "get", "get"), ("/pks/lookup", "other", "other"), ("/pks/add", "", "add"),
    ("/cluster/load", "", "cluster"), ("/metrics", "", "metrics"), ("unmatched", "", "unmatched"),
])
def test_requests_count_under_a_bounded_set_of_operations(endpoint: str, op: str,
                                                          name: str) -> None:
    assert operation(endpoint, op) == name


def test_a_sample_covers_the_window_since_the_last_one() -> None:
    metrics = HttpMetrics()
    metrics.observe("/pks/lookup", "get", 200, 0.0005)  # before the first window: not counted
    now, cpu = [10.0], [1.0]
    probe = LoopLagProbe(clock=lambda: now[0])
    sampler = LoadSampler("n1", metrics, probe, lambda: 4,
                          Figures(replication_lags=lambda: [0.01, 0.03, 0.02],
                                  commit_seconds=lambda: [0.004],
                                  sync_age=lambda: 3.0, pending_pushes=lambda: 2),
                          wall=lambda: 1_700_000_000.0, clock=lambda: now[0], cpu=lambda: cpu[0])
    for _ in range(100):
        metrics.observe("/pks/lookup", "get", 200, 0.0005)
    metrics.observe("/pks/lookup", "index", 200, 0.02)
    metrics.observe("/pks/add", "", 200, 0.2)
    metrics.observe("/metrics", "", 200, 0.001)
    probe.note(0.004)
    probe.note(0.010)
    now[0], cpu[0] = 12.0, 1.5
    s = sampler.sample()
    assert s.window_s == 2.0 and s.cpu == pytest.approx(0.25) and s.connections == 4
    assert s.ops["get"].rate == 50.0 and s.ops["add"].rate == 0.5
    assert s.ops["get"].p99 is not None and s.ops["get"].p99 <= 0.0005
    assert (s.loop_lag_mean, s.loop_lag_max) == (pytest.approx(0.007), 0.010)
    assert (s.replication_p99, s.replication_samples) == (0.03, 3)
    assert (s.commit_p99, s.commit_samples, s.sync_age, s.pending_pushes) == (0.004, 1, 3.0, 2)
    # Client traffic leaves out /metrics; its p99 is the worst op's (the upload's).
    load = client_load(s)
    assert load.rate == pytest.approx(50.0 + 0.5 + 0.5)
    assert load.p99 is not None and 0.1 < load.p99 <= 0.25
    # The read latency merges every lookup op: 100 fast gets outweigh one slow index.
    assert s.read_samples == 101 and s.read_p99 is not None and s.read_p99 <= 0.0005
    assert sampler.latest is s
    # The next window starts empty.
    now[0] = 14.0
    nxt = sampler.sample()
    assert nxt.ops["get"].rate == 0 and nxt.ops["get"].p99 is None
    # ... but the read latency covers the last READ_WINDOWS windows: a quiet one keeps it.
    assert nxt.read_samples == 101 and nxt.read_p99 == s.read_p99
    for _ in range(READ_WINDOWS - 1):
        now[0] += 2.0
        last = sampler.sample()
    assert last.read_samples == 0 and last.read_p99 is None
    assert (nxt.loop_lag_mean, nxt.loop_lag_max) == (0.0, 0.0)
