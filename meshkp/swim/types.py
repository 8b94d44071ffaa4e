"""Value types shared by the SWIM modules: member status and the public member view.

Addresses are meshkp.net.addr.Addr: the (host, port) of a node's gossip listener, UDP and TCP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from meshkp.net.addr import Addr


class Status(IntEnum):
    """A member's state in the SWIM state machine; the integer is the wire code."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2  # declared failed by the failure detector
    LEFT = 3  # said goodbye itself (graceful leave); never confused with DEAD

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """An immutable snapshot of one member, as handed to delegates, events and the HTTP API."""

    node_id: str
    addr: Addr
    incarnation: int
    status: Status
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The /cluster/nodes representation (`http` comes from meta when the node set it)."""
        return {
            "id": self.node_id,
            "addr": f"{self.addr[0]}:{self.addr[1]}",
            "http": self.meta.get("http", ""),
            "status": self.status.label,
            "incarnation": self.incarnation,
            "meta": dict(self.meta),
        }
