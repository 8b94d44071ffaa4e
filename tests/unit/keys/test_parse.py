"""KeyParser in the worker pool: errors raised while parsing reach the caller as themselves."""

from __future__ import annotations

import pytest

from meshkp.errors import LimitExceeded
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.pool import WorkerPool
from meshkp.limits import Limits


async def test_limit_exceeded_crosses_the_process_pool(caplog: pytest.LogCaptureFixture) -> None:
    # LimitExceeded did not survive pickling (its `limit` argument was lost), which broke the
    # pool: every upload in flight fell back to a thread and the pool was restarted.
    pool = WorkerPool(1)
    parser = KeyParser(Committer(Limits(upload_keys=5)), process_threshold=1, pool=pool)
    try:
        with pytest.raises(LimitExceeded) as raised:
            await parser.parse(b"\xc6\x00" * 6)
        assert raised.value.limit == "upload_keys"
        assert "worker_pool_broken" not in caplog.text
    finally:
        await pool.close()


def test_uploads_the_pool_takes_are_never_parsed_in_the_commit_job() -> None:
    pool = WorkerPool(1)  # constructing it starts nothing
    pooled = KeyParser(Committer(Limits()), process_threshold=1024, pool=pool)
    assert pooled.in_commit(b"x" * 1023)
    assert not pooled.in_commit(b"x" * 1024)  # the operator sent these to worker processes
    threaded = KeyParser(Committer(Limits()), process_threshold=0, pool=pool)
    assert threaded.in_commit(b"x" * threaded.in_commit_bytes)
    assert not threaded.in_commit(b"x" * (threaded.in_commit_bytes + 1))
