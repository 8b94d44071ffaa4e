"""A real HAProxy, configured as `meshkp lb-config haproxy` writes it, in front of 3 nodes:
draining one through the routing policy takes it out of rotation with no request failing,
and setting drain back puts it in again.

The nodes run in this process so that the policy can be applied to them: until the control
plane's driver runs in `meshkp serve`, a policy log without Raft (tests/unit/node/policy_log.py)
applies the real SetRouting entries the driver will apply. Everything between HAProxy and the
nodes (health checks on /cluster/health, request routing) is real."""

from __future__ import annotations

import asyncio
import collections
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cli.lb_templates import Backend, render_haproxy
from meshkp.control.policy.commands import SetRouting
from meshkp.node.config import NodeConfig
from meshkp.node.node import Node
from tests.ports import free_port
from tests.unit.node.policy_log import LogPlane, PolicyLog

pytestmark = pytest.mark.integration

CHECK_MS = 200
REQUESTS = 30
# Bound of every wait: HAProxy needs `fall 2` checks (0.4 s) to take a node out.
WAIT_S = 10.0


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    # A balancer without agent checks: with no grace period, the drain makes health 503 at once.
    started = [Node(NodeConfig(data_dir=tmp_path / f"n{i}", node_id=f"n{i}", http_port=0,
                               access_log=False, drain_grace_s=0)) for i in range(3)]
    try:
        for node in started:
            await node.start()
        yield started
    finally:
        for node in started:
            await node.stop()


async def served_by(session: aiohttp.ClientSession, url: str) -> str | None:
    """The node id that answered /pks/health through the balancer; None if it failed."""
    try:
        async with session.get(url + "/pks/health") as reply:
            return str((await reply.json())["node_id"]) if reply.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
        return None


async def spread(session: aiohttp.ClientSession, url: str) -> collections.Counter[str | None]:
    return collections.Counter([await served_by(session, url) for _ in range(REQUESTS)])


async def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await predicate():
        assert loop.time() < deadline, f"not within {WAIT_S} s: {what}"
        await asyncio.sleep(0.1)


async def test_a_drained_node_leaves_rotation_without_failed_requests(
        nodes: list[Node], tmp_path: Path) -> None:
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.skip("haproxy is not installed (Debian package haproxy: make apt)")
    log = PolicyLog()
    planes: list[LogPlane] = []
    for node in nodes:
        plane = log.plane(str(node.node_id), leader=node is nodes[0])
        assert node.policy is not None
        node.policy.attach(plane)
        planes.append(plane)
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    backends = [Backend(str(n.node_id), n.url.removeprefix("http://")) for n in nodes]
    config.write_text(render_haproxy(backends, f"127.0.0.1:{port}", CHECK_MS))
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "wb") as out:
        proxy = await asyncio.create_subprocess_exec(binary, "-db", "-f", str(config),
                                                     stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def answers() -> bool:
                assert proxy.returncode is None, log_path.read_text()
                return await served_by(session, url) is not None

            await wait_for(answers, "HAProxy answers")
            assert set(await spread(session, url)) == {"n0", "n1", "n2"}

            await planes[0].propose(SetRouting("n2", drain=True), "ops")
            during = collections.Counter[str | None]()

            async def taken_out() -> bool:
                during.update([await served_by(session, url)])
                return "Server meshkp/n2 is DOWN" in log_path.read_text()

            await wait_for(taken_out, "HAProxy takes the drained n2 out")
            assert None not in during, f"requests failed while draining: {dict(during)}"
            after = await spread(session, url)
            assert set(after) == {"n0", "n1"}, f"after the drain: {dict(after)}"
            # Drained, not stopped: a client that reaches it directly is still served.
            async with session.get(nodes[2].url + "/pks/health") as reply:
                assert reply.status == 200

            await planes[0].propose(SetRouting("n2", drain=False), "ops")

            async def back() -> bool:
                return "Server meshkp/n2 is UP" in log_path.read_text()

            await wait_for(back, "HAProxy puts n2 back")
            assert set(await spread(session, url)) == {"n0", "n1", "n2"}
    finally:
        proxy.terminate()
        try:
            await asyncio.wait_for(proxy.wait(), 10)
        except TimeoutError:
            proxy.kill()
            await proxy.wait()
