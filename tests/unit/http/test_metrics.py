"""The request metrics exported at /metrics."""

from __future__ import annotations

from meshkp.http.metrics import HttpMetrics


def test_counts_and_histogram_render() -> None:
    metrics = HttpMetrics()
    metrics.observe("/pks/lookup", "get", 200, 0.0003)
    metrics.observe("/pks/lookup", "get", 200, 0.02)
    metrics.observe("/pks/lookup", "get", 404, 20.0)
    text = metrics.render().decode()
    assert 'meshkp_http_requests_total{endpoint="/pks/lookup",op="get",status="200"} 2.0' in text
    assert 'meshkp_http_requests_total{endpoint="/pks/lookup",op="get",status="404"} 1.0' in text
    # Durations by op and status class: the two answers and the 404 apart.
    ok = 'meshkp_http_request_seconds_bucket{code="2xx",endpoint="/pks/lookup",le="%s",op="get"} %s'
    assert ok % ("0.0005", "1.0") in text
    assert ok % ("0.025", "2.0") in text
    assert ok % ("10.0", "2.0") in text
    assert ok % ("+Inf", "2.0") in text
    missing = 'meshkp_http_request_seconds_bucket{code="4xx",endpoint="/pks/lookup",le="%s",op="get"} %s'
    assert missing % ("10.0", "0.0") in text
    assert missing % ("+Inf", "1.0") in text
    assert 'meshkp_http_request_seconds_count{code="2xx",endpoint="/pks/lookup",op="get"} 2.0' in text
    assert 'meshkp_http_request_seconds_count{code="4xx",endpoint="/pks/lookup",op="get"} 1.0' in text


def test_observations_are_exact_across_folds() -> None:
    # Observations are queued and folded FOLD_EVERY at a time or when read: none is lost or
    # counted twice, whether a read comes between folds or not.
    from meshkp.http.metrics import FOLD_EVERY

    metrics = HttpMetrics()
    total = 2 * FOLD_EVERY + 7
    for n in range(total):
        metrics.observe("/pks/lookup", "get", 200, 0.001)
        if n == FOLD_EVERY + 3:
            assert metrics.requests.counts == {("/pks/lookup", "get", 200): n + 1}
    assert metrics.requests.counts == {("/pks/lookup", "get", 200): total}
    assert f'meshkp_http_requests_total{{endpoint="/pks/lookup",op="get",status="200"}} {total}.0' \
        in metrics.render().decode()
