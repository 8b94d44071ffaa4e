"""The request and upload metrics exported at /metrics."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from meshkp.http.app import METRICS_KEY, make_app
from meshkp.http.metrics import HttpMetrics
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore


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


def test_upload_outcomes_and_rejection_reasons_render_from_zero() -> None:
    metrics = HttpMetrics()
    text = metrics.render().decode()
    for outcome in ("added", "updated", "unchanged", "rejected"):
        assert f'meshkp_upload_keys_total{{outcome="{outcome}"}} 0.0' in text
    for reason in ("blacklisted", "deleted", "invalid"):
        assert f'meshkp_upload_rejected_total{{reason="{reason}"}} 0.0' in text
    metrics.uploads.count("added")
    metrics.uploads.count("added")
    metrics.uploads.count("rejected", "deleted")
    text = metrics.render().decode()
    assert 'meshkp_upload_keys_total{outcome="added"} 2.0' in text
    assert 'meshkp_upload_keys_total{outcome="rejected"} 1.0' in text
    assert 'meshkp_upload_rejected_total{reason="deleted"} 1.0' in text
    assert 'meshkp_upload_rejected_total{reason="invalid"} 0.0' in text


async def test_the_add_handler_counts_each_key_of_an_upload() -> None:
    keytext = (Path(__file__).resolve().parents[2] / "fixtures" / "alice_unsigned.asc").read_text()
    store = AsyncStore(MemoryStore())
    committer = Committer(Limits())
    service = KeyService(store, "n1", committer, KeyParser(committer, process_threshold=0))
    app = make_app(service, Limits())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.post("/pks/add", data={"keytext": keytext})).status == 200
        assert (await client.post("/pks/add", data={"keytext": keytext})).status == 200
        uploads = app[METRICS_KEY].uploads
        assert uploads.outcomes["added"] == 1
        assert uploads.outcomes["updated"] + uploads.outcomes["unchanged"] == 1
        assert sum(uploads.rejections.values()) == 0
    finally:
        await client.close()
        await store.close()


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
