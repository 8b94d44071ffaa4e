"""The agent check's formula (weight x headroom) and its reply words, as tables; and one real
TCP connection to the responder."""

from __future__ import annotations

import asyncio

import pytest

from meshkp.control.policy.commands import SetRouting
from meshkp.http.agent_check import (
    LAG_BUDGET_S,
    AgentCheckResponder,
    AgentState,
    agent_percent,
    agent_reply,
    headroom,
)
from meshkp.http.load import LoadSampler, LoopLagProbe
from meshkp.http.metrics import HttpMetrics
from meshkp.http.routing import RoutingGate
from meshkp.replication.load_wire import LoadSummary
from tests.unit.http.test_policy_auth_routing import applied


def summary(cpu: float = 0.0, lag: float = 0.0) -> LoadSummary:
    return LoadSummary("n1", 1.0, 2.0, {}, cpu, lag, lag, 0)


@pytest.mark.parametrize(("cpu", "lag", "room"), [
    (0.0, 0.0, 1.0),
    (0.25, 0.0, 0.75),
    (0.25, LAG_BUDGET_S / 2, 0.5),  # the busier of the two counts
    (1.7, 0.0, 0.0),  # worker threads beyond one core: saturated, not negative
    (0.0, LAG_BUDGET_S * 3, 0.0),
])
def test_headroom_is_one_minus_the_busier_of_cpu_and_loop(cpu: float, lag: float,
                                                          room: float) -> None:
    assert headroom(summary(cpu, lag)) == pytest.approx(room)


def test_no_sample_yet_is_full_headroom() -> None:
    assert headroom(None) == 1.0


@pytest.mark.parametrize(("weight", "room", "percent"), [
    (100, 1.0, 100),  # the default weight at rest: the configured server weight
    (100, 0.42, 42),
    (50, 1.0, 50),
    (100, 0.0, 1),  # saturated nodes still share by weight
    (0, 1.0, 0),  # weight 0: nothing
    (200, 1.0, 200),
    (10_000, 1.0, 256),  # HAProxy's largest weight
    (3, 0.1, 1),
])
def test_agent_percent_is_weight_times_headroom_within_haproxy_bounds(
        weight: int, room: float, percent: int) -> None:
    assert agent_percent(weight, room) == percent


@pytest.mark.parametrize(("state", "line"), [
    (AgentState(True, False, False, 100, 0.8), "up ready 80%"),
    (AgentState(True, True, False, 100, 0.8), "up drain"),
    (AgentState(True, True, True, 100, 0.8), "up maint"),
    # The reason last: HAProxy reads it from a word starting with "#" to the end of the line.
    (AgentState(False, False, False, 100, 1.0),
     "down ready 100% #no majority of the mesh is alive here"),
    (AgentState(False, True, False, 100, 1.0), "down drain #no majority of the mesh is alive here"),
    (AgentState(True, False, False, 0, 1.0), "up ready 0%"),
])
def test_agent_reply_words(state: AgentState, line: str) -> None:
    assert agent_reply(state) == line


async def test_the_responder_answers_one_line_per_connection_and_follows_the_policy() -> None:
    current = [applied(SetRouting("n1", weight=50))]
    gate = RoutingGate("n1", lambda: current[0], drain_grace_s=60)
    sampler = LoadSampler("n1", HttpMetrics(), LoopLagProbe(), lambda: 0)
    responder = AgentCheckResponder("127.0.0.1", 0, gate, sampler, lambda: True)
    port = await responder.start()

    async def ask() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        line = await asyncio.wait_for(reader.read(), 5)  # the responder closes after one line
        writer.close()
        await writer.wait_closed()
        return line

    try:
        assert await ask() == b"up ready 50%\n"
        current[0] = applied(SetRouting("n1", weight=50), SetRouting("n1", drain=True))
        assert await ask() == b"up drain\n"
    finally:
        await responder.stop()
