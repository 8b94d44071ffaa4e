"""The anti-entropy loop logs an exception in a round and goes on (issue 12, robustness)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from meshkp.replication.peers import PeerRef

from .helpers import FAST, Mesh


class FlakyPeers:
    """The membership view, raising on its first call as a bug in membership would."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def alive_peers(self) -> list[PeerRef]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected bug in the membership view")
        return self.inner.alive_peers()  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_an_exception_in_a_round_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = dataclasses.replace(FAST, first_sync_delay_s=0.0, sync_interval_s=0.05)
    mesh = Mesh(2, config)
    try:
        replicator = mesh[0].replicator
        peers = FlakyPeers(replicator.peers)
        replicator.peers = peers  # type: ignore[assignment]
        with caplog.at_level("ERROR"):
            await replicator.start()
            async with asyncio.timeout(10):  # rounds after the failed one still run
                while peers.calls < 3:
                    await asyncio.sleep(0.02)
        assert "event=sync_loop_bug" in caplog.text
        assert replicator.loop_failures == 1
        assert replicator._task is not None and not replicator._task.done()
    finally:
        await mesh.close()
