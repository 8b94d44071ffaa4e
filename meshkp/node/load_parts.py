"""The load part of a Node: the sampler, the load exchange with peers, the agent-check port.

One context manager, entered into the Node's AsyncExitStack before the HTTP listener: it
registers GET /cluster/load and /cluster/performance, and runs two tasks (the loop-lag probe,
and every `load_interval` a sample sent to every live peer), plus the agent-check responder
when `agent_check_port` is set. On exit the tasks stop and the agent port closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from meshkp.control.driver.plane import ControlPlane
from meshkp.errors import ConfigError
from meshkp.http.agent_check import AgentCheckResponder
from meshkp.http.load import Figures, LoadSampler, LoopLagProbe
from meshkp.http.load_metrics import LoadMetrics
from meshkp.http.load_routes import LoadHandlers
from meshkp.http.metrics import HttpMetrics
from meshkp.http.routing import RoutingGate
from meshkp.membership.service import MembershipService
from meshkp.node.config import NodeConfig
from meshkp.replication.load import exchange
from meshkp.replication.replicator import Replicator

log = logging.getLogger(__name__)

@dataclass(slots=True)
class LoadPart:
    """The running load part: its sampler and, when on, the agent responder's bound port."""

    sampler: LoadSampler
    agent_port: int | None = None


def figures_of(replicator: Replicator, control: ControlPlane | None,
               wall: Callable[[], float] = time.time) -> Figures:
    """The live performance figures of this node's replication and control plane."""

    def sync_age() -> float | None:
        done = [s.last_sync_time for s in replicator.statuses.values()
                if s.last_sync_time is not None and not s.last_result.startswith("error")]
        return max(0.0, wall() - max(done)) if done else None

    return Figures(
        replication_lags=lambda: replicator.counters.lag_samples,
        commit_seconds=(lambda: control.commit_seconds) if control is not None else None,
        sync_age=sync_age,
        pending_pushes=replicator.pusher.pending,
        reach=lambda: replicator.loads.reached,
    )


async def _report(sampler: LoadSampler, replicator: Replicator, interval: float) -> None:
    """Every interval: a new sample, sent to every live peer (their answers kept)."""
    board = replicator.loads
    while True:
        await asyncio.sleep(interval)
        board.own = sampler.sample()
        try:
            await asyncio.wait_for(
                exchange(board, replicator.peers, replicator.channel, interval, time.monotonic),
                2 * interval)
        except TimeoutError:
            log.info("event=load_exchange_slow interval_s=%s", interval)
        except Exception:  # a bug must not stop the reports (logged, the loop goes on)
            log.exception("event=load_exchange_bug")


@contextlib.asynccontextmanager
async def run_load(
    config: NodeConfig,
    node_id: str,
    app: web.Application,
    metrics: HttpMetrics,
    replicator: Replicator,
    control: ControlPlane | None,
    gate: RoutingGate,
    membership: MembershipService | None,
    connections: Callable[[], int],
) -> AsyncIterator[LoadPart]:
    """Sampling, the load exchange and the agent check; the routes added to `app`."""
    probe = LoopLagProbe()
    sampler = LoadSampler(node_id, metrics, probe, connections, figures_of(replicator, control))
    LoadHandlers(node_id, sampler, replicator.loads, gate, membership, config.load_interval_s,
                 replicator.config.sync_interval_s).register(app)
    collector = LoadMetrics(sampler, replicator.loads, gate, config.load_interval_s)
    metrics.registry.register(collector)
    part = LoadPart(sampler)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(probe.run(), name="load-lag-probe"),
             loop.create_task(_report(sampler, replicator, config.load_interval_s),
                              name="load-report")]
    agent: AgentCheckResponder | None = None
    try:
        if config.agent_check_port:
            healthy = membership.healthy if membership is not None else (lambda: True)
            agent = AgentCheckResponder(config.host, config.agent_check_port, gate, sampler,
                                        healthy)
            try:
                part.agent_port = await agent.start()
            except OSError as exc:
                raise ConfigError(
                    f"the agent check cannot listen on {config.host}:{config.agent_check_port}: "
                    f"{exc.strerror or exc}; choose another agent_check_port") from None
        yield part
    finally:
        metrics.registry.unregister(collector)
        if agent is not None:
            await agent.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
