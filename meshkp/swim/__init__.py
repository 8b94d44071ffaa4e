"""SWIM + Lifeguard membership: a sans-I/O core (`Swim`) driven by `tick(now)` and `handle()`."""

from meshkp.swim.config import SwimConfig
from meshkp.swim.effects import (
    Delegate,
    Effect,
    MemberChanged,
    NullDelegate,
    ReplyTcp,
    SendTcp,
    SendUdp,
)
from meshkp.swim.protocol import Swim
from meshkp.swim.types import MemberInfo, Status

__all__ = [
    "Delegate",
    "Effect",
    "MemberChanged",
    "MemberInfo",
    "NullDelegate",
    "ReplyTcp",
    "SendTcp",
    "SendUdp",
    "Status",
    "Swim",
    "SwimConfig",
]
