"""What the data plane's policy effects and their endpoints need of the control plane.

meshkp/control's `ControlPlane` (the asyncio Raft driver) provides it; this Protocol is all
the HTTP handlers and meshkp/node/policy_parts.py rely on, so they run against any object
that holds an applied PolicyState, reports applied entries and proposes commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from meshkp.control.policy.apply import Applied
from meshkp.control.policy.commands import Command
from meshkp.control.policy.state import PolicyState


class ControlPlaneLike(Protocol):
    @property
    def state(self) -> PolicyState:
        """The policy as applied on this node."""
        ...

    @property
    def is_leader(self) -> bool:
        """True while this node leads (automatic conflict resolutions are proposed there only)."""
        ...

    def observe(self, fn: Callable[[Applied], None]) -> None:
        """Call `fn` on the event loop after each applied command entry, in log order."""

    async def propose(self, command: Command, actor: str, *, timeout: float | None = None) -> Applied:
        """Commit `command` (forwarded to the leader) and return once applied here; a
        503-mapped MeshkpError when there is no leader."""
        ...
