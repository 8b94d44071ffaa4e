"""POST /cluster/conflicts/{id}/resolve when the conflict's resolution applies while the handler
reads the conflict list: 409, as for one applied before the request. Found under load in the
5-node conflicts test: a second resolve got the proposal check's 400 (or a 404, the conflict
having left the list) instead of the 409 that says it was decided once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from meshkp.control.policy.commands import Keep
from meshkp.control.policy.state import PolicyState, Resolution
from meshkp.control.raft.types import FencingToken
from meshkp.http.cluster_sync import ClusterSyncHandlers

TOKEN = "t" * 32
CONFLICT = "9ee1a47840e8437487d4d2616a781f1d"


class _Plane:
    """Only what the handler reads before it would propose: the applied state."""

    def __init__(self) -> None:
        self.state = PolicyState()
        self.proposed: list[Any] = []

    @property
    def is_leader(self) -> bool:
        return False

    def observe(self, fn: Callable[..., None]) -> None:
        pass

    async def propose(self, command: Any, actor: str, **_: Any) -> Any:
        self.proposed.append(command)
        raise AssertionError("a resolved conflict must not be proposed again")


class _Replicator:
    """The conflict list; reading it lets the resolution apply meanwhile (an await)."""

    def __init__(self, plane: _Plane) -> None:
        self.plane = plane

    async def conflicts(self, limit: int) -> list[Any]:
        resolution = Resolution(b"\x01" * 20, Keep.UPDATE, "admin", FencingToken(2, 19))
        self.plane.state = dataclasses.replace(self.plane.state,
                                               resolutions={CONFLICT: resolution})
        return []  # a resolved conflict leaves the list


async def test_a_resolution_applied_during_the_request_answers_409() -> None:
    plane = _Plane()
    handlers = ClusterSyncHandlers(_Replicator(plane), TOKEN, plane)  # type: ignore[arg-type]
    app = web.Application()
    handlers.register(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        reply = await client.post(f"/cluster/conflicts/{CONFLICT}/resolve", json={"keep": "delete"},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status == 409, await reply.text()
        assert "was resolved at" in await reply.text() and "(keep update)" in await reply.text()
        assert plane.proposed == []
    finally:
        await client.close()
