"""POST /pks/add's reply (content types, body) and its one `event=upload` log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.unit.http.test_upload_body import FORM, KEYTEXT, LIMITS, serving


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with serving(LIMITS) as client:
        yield client


async def test_the_text_reply_names_the_outcome_and_is_logged_once(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshkp.http.hkp")
    reply = await client.post("/pks/add", data={"keytext": KEYTEXT})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await reply.text()).startswith("1 added, 0 updated, 0 unchanged, 0 rejected\n")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=upload ")]
    assert lines == ["event=upload added=1 updated=0 unchanged=0 rejected=0"]


async def test_the_json_reply_is_logged_once_and_a_refused_body_not_at_all(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meshkp.http.hkp")
    reply = await client.post("/pks/add?options=mr", data={"keytext": KEYTEXT})
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (await reply.json())["added"] == 1
    again = await client.post("/pks/add", data=b"keytext=" + b"x" * 10, headers=FORM)
    assert again.status == 400
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=upload ")]
    assert lines == ["event=upload added=1 updated=0 unchanged=0 rejected=0"]
