"""The control plane: a sans-I/O Raft log (RaftCore, Ready) that carries the cluster policy.

docs/control.md explains it. The pieces a driver uses:
- RaftCore and the Ready loop (raft/core.py, raft/ready.py), wire messages (raft/messages.py);
- the policy state machine: Proposal and commands in, apply_entry() out (policy/);
- RaftStorage, the durable state on the node's Store (storage.py; the only module with I/O);
- autopilot.next_change(), the membership change a leader should propose from SWIM health.
"""

from meshkp.control.autopilot import Health, next_change
from meshkp.control.config import ControlConfig
from meshkp.control.policy.apply import Applied, apply, apply_entry, check
from meshkp.control.policy.commands import (
    AuditDelete,
    BlacklistAdd,
    BlacklistRemove,
    ChangeMembership,
    Command,
    ConflictKind,
    Keep,
    Proposal,
    PutAdmin,
    RemoveAdmin,
    ResolveConflict,
    Rule,
    SetConflictRules,
    SetLimits,
    SetRouting,
    decode_proposal,
)
from meshkp.control.policy.snapshot import decode_state, encode_state
from meshkp.control.policy.state import AuditEntry, PolicyState, Routing
from meshkp.control.raft.bootstrap import bootstrap
from meshkp.control.raft.core import RaftCore
from meshkp.control.raft.membership import ChangeOp, Configuration, MembershipChange
from meshkp.control.raft.messages import (
    AppendEntries,
    AppendResponse,
    InstallSnapshot,
    ProposeReply,
    ProposeRequest,
    RaftMessage,
    Refused,
    VoteRequest,
    VoteResponse,
    decode_message,
    is_control_type,
)
from meshkp.control.raft.ready import Outgoing, PeerStatus, Ready, SoftState, Status
from meshkp.control.raft.types import (
    Compaction,
    Entry,
    EntryKind,
    FencingToken,
    HardState,
    Restored,
    Role,
    Snapshot,
)
from meshkp.control.storage import RaftStorage

__all__ = [
    "AppendEntries", "AppendResponse", "Applied", "AuditDelete", "AuditEntry", "BlacklistAdd",
    "BlacklistRemove", "ChangeMembership", "ChangeOp", "Command", "Compaction", "Configuration",
    "ConflictKind", "ControlConfig", "Entry", "EntryKind", "FencingToken", "HardState", "Health",
    "InstallSnapshot", "Keep", "MembershipChange", "Outgoing", "PeerStatus", "PolicyState", "Proposal",
    "ProposeReply", "ProposeRequest", "PutAdmin", "RaftCore", "RaftMessage", "RaftStorage", "Ready",
    "Refused", "RemoveAdmin", "ResolveConflict", "Restored", "Role", "Routing", "Rule",
    "SetConflictRules", "SetLimits", "SetRouting", "Snapshot", "SoftState", "Status", "VoteRequest",
    "VoteResponse", "apply", "apply_entry", "bootstrap", "check", "decode_message", "decode_proposal",
    "decode_state", "encode_state", "is_control_type", "next_change",
]
