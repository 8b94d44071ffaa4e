"""The routing policy of this node as its HTTP answers show it (PUT /cluster/routing).

- `drain`: from the moment the change applies here the agent check answers "drain" (HAProxy
  sends no new request, meshkp/http/agent_check.py); once the grace period (`drain_grace`)
  has passed, GET /cluster/health answers 503 too, so balancers that only health-check (and
  Kubernetes' readiness probe) take the node out, and the operator knows it is drained: the
  requests in flight when the drain began had the grace period to finish. The node keeps
  serving everything it is sent (clients that do not go through the balancer work normally).
- `read_only`: POST /pks/add answers 503 naming a writable node (one whose routing is neither
  read-only nor draining, from the members' HTTP addresses); lookups are served as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from meshkp.control.policy.state import PolicyState, Routing

ROUTING_RETRY_AFTER_S = 5
# node id -> its HTTP address ("host:port"), of the members currently alive (self excluded).
WritablePeers = Callable[[], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Drain:
    """This node's drain as of now: since when (Unix time), and whether the grace is over."""

    since: float
    grace_s: float
    now: float

    @property
    def over(self) -> bool:
        """The grace period has passed: health answers 503 and the agent "maint"."""
        return self.now - self.since >= self.grace_s

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.since + self.grace_s - self.now)


class RoutingGate:
    """Reads this node's routing from the applied policy on every request."""

    def __init__(self, node_id: str, policy: Callable[[], PolicyState],
                 peers: WritablePeers | None = None,
                 clock: Callable[[], float] = time.time, *, drain_grace_s: float = 0.0) -> None:
        self.node_id = node_id
        self.policy = policy
        self.peers = peers
        self.clock = clock
        self.drain_grace_s = drain_grace_s
        self._drain_since: float | None = None

    @property
    def own(self) -> Routing:
        return self.policy().routing_of(self.node_id)

    def draining(self) -> tuple[bool, float | None]:
        """Whether this node is draining, and since when (Unix time it was first seen so)."""
        if not self.own.drain:
            self._drain_since = None
            return False, None
        if self._drain_since is None:
            self._drain_since = self.clock()
        return True, self._drain_since

    def drain(self) -> Drain | None:
        """The drain of this node (None: not draining), with its grace period."""
        draining, since = self.draining()
        if not draining or since is None:
            return None
        return Drain(since, self.drain_grace_s, self.clock())

    def writable_node(self) -> str | None:
        """An alive peer the policy lets take uploads ("node_id http://host:port"), or None."""
        state = self.policy()
        for node, http in sorted((self.peers() if self.peers is not None else {}).items()):
            routing = state.routing_of(node)
            if not routing.read_only and not routing.drain:
                return f"{node} http://{http}"
        return None

    def check_writable(self) -> None:
        """503 when this node is read-only, naming a writable node if one is known."""
        if not self.own.read_only:
            return
        other = self.writable_node()
        where = f"upload to {other} instead" if other else "no writable node is known; retry later"
        raise web.HTTPServiceUnavailable(
            text=f"node {self.node_id} is read-only by the cluster routing policy: {where}\n",
            headers={"Retry-After": str(ROUTING_RETRY_AFTER_S)},
        )


ROUTING_KEY = web.AppKey("meshkp.routing", RoutingGate)
