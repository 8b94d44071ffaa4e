"""The HAProxy agent-check responder: one line per connection, from routing and measured load.

HAProxy (`agent-check agent-port N`, configuration.txt §5.2) connects every `agent-inter`,
reads one line and closes. The line is built of words:

- operational state: `up`, or `down` when this node does not see a majority of the mesh alive
  (the same condition that makes GET /cluster/health 503), with ` #REASON` at the end of the
  line (HAProxy shows what follows a `#` word, to the end of the line, as the reason);
- administrative state, from the routing policy: `drain` while the node drains and its grace
  period runs (no new requests; those in flight finish), `maint` once the grace is over,
  `ready` otherwise (it cancels a `drain` or `maint` this agent said before: only the agent can
  undo what it set);
- when ready, the weight `NN%` of the server's configured weight (`weight 100` in the config
  `meshkp lb-config haproxy` writes), from the formula of `agent_percent`.

The answer is computed from the latest load sample (at most `load_interval` old) and the
routing policy applied here at the moment of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from meshkp.http.load import LoadSampler
from meshkp.http.routing import RoutingGate
from meshkp.replication.load_wire import LoadSummary

log = logging.getLogger(__name__)

# Mean event-loop lag at which the loop counts as saturated: a request then waits this long
# before it even starts. 50 ms is half of the 100 ms a test may block the loop (STYLE.md §10).
LAG_BUDGET_S = 0.05
# HAProxy's largest server weight (SRV_UWGHT_MAX): with `weight 100`, at most 256%.
MAX_PERCENT = 256
DOWN_REASON = "no majority of the mesh is alive here"
# A reply is one short line; a client that does not read it is dropped after this long.
WRITE_TIMEOUT_S = 2.0


def headroom(summary: LoadSummary | None) -> float:
    """The share of this node's capacity left, in [0, 1]: 1 - the busier of CPU and loop.

    CPU is the process's CPU seconds per second, against one core (the event loop, which
    answers every request, runs on one); the loop's busyness is its mean lag against
    LAG_BUDGET_S. No sample yet: full headroom.
    """
    if summary is None:
        return 1.0
    busy = max(min(1.0, summary.cpu), min(1.0, summary.loop_lag_mean / LAG_BUDGET_S))
    return max(0.0, 1.0 - busy)


def agent_percent(weight: int, room: float) -> int:
    """The agent's `NN%`: routing weight x headroom, rounded, within [1, MAX_PERCENT].

    Weight 100 (the default) at full headroom is 100%: the server's configured weight. Weight
    0 is 0% (HAProxy sends nothing). Any other weight keeps at least 1%, so that when every
    node is saturated they still share the traffic by their weights instead of all refusing.
    """
    if weight <= 0:
        return 0
    return max(1, min(MAX_PERCENT, round(weight * max(0.0, min(1.0, room)))))


@dataclass(frozen=True, slots=True)
class AgentState:
    """What the agent's reply is made of."""

    healthy: bool
    draining: bool
    drain_over: bool
    weight: int
    headroom: float


def agent_reply(state: AgentState) -> str:
    """The agent line (without the newline) for `state`."""
    words = ["up" if state.healthy else "down"]
    if state.draining:
        words.append("maint" if state.drain_over else "drain")
    else:
        words += ["ready", f"{agent_percent(state.weight, state.headroom)}%"]
    if not state.healthy:
        words.append(f"#{DOWN_REASON}")
    return " ".join(words)


class AgentCheckResponder:
    """A TCP server on the agent port; each connection gets the current line, then EOF."""

    def __init__(self, host: str, port: int, gate: RoutingGate, sampler: LoadSampler,
                 healthy: Callable[[], bool]) -> None:
        self.host, self.port = host, port
        self.gate = gate
        self.sampler = sampler
        self.healthy = healthy
        self._server: asyncio.Server | None = None

    def state(self) -> AgentState:
        drain = self.gate.drain()
        return AgentState(self.healthy(), drain is not None, drain is not None and drain.over,
                          self.gate.own.weight, headroom(self.sampler.latest))

    async def start(self) -> int:
        """Listen; the bound port (differs from `port` when that is 0)."""
        self._server = await asyncio.start_server(self._answer, self.host, self.port,
                                                  reuse_address=True)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("event=agent_check_listening addr=%s:%d", self.host, bound)
        return bound

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write((agent_reply(self.state()) + "\n").encode("ascii"))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.debug("event=agent_check_write_failed error=%r", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT_S)
