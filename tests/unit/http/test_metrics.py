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
    bucket = 'meshkp_http_request_seconds_bucket{endpoint="/pks/lookup",le="%s",op="get"} %s'
    assert bucket % ("0.0005", "1.0") in text
    assert bucket % ("0.025", "2.0") in text
    assert bucket % ("10.0", "2.0") in text
    assert bucket % ("+Inf", "3.0") in text
    assert 'meshkp_http_request_seconds_count{endpoint="/pks/lookup",op="get"} 3.0' in text
