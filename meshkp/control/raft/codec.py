"""msgpack objects of entries, snapshots and hard state: shared by the wire and by storage.

Every `*_from_obj` validates shape and bounds and raises WireError (for storage, the adapter
turns it into StoreError): bytes from a peer or a disk never reach the core unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from meshkp.control.raft.membership import (
    MAX_NODE_ID_CHARS,
    ConfigChange,
    Configuration,
    Generation,
    generation_from_obj,
)
from meshkp.control.raft.types import Entry, EntryKind, HardState, Snapshot
from meshkp.errors import WireError

# Terms and indexes are counters that fit msgpack's int64.
MAX_COUNTER = 2**63 - 1
# A monotonic time echoed by a follower (AppendEntries.sent_at); any finite value this large.
MAX_TIME = 1e12


def uint(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNTER:
        raise WireError(f"{what} must be an integer in 0..{MAX_COUNTER}, got {value!r}")
    return value


def flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise WireError(f"{what} must be a boolean, got {value!r}")
    return value


def seconds(value: object, what: str) -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
            or abs(value) > MAX_TIME):
        raise WireError(f"{what} must be a finite time in seconds, got {value!r}")
    return float(value)


def blob(value: object, what: str, limit: int) -> bytes:
    if not isinstance(value, bytes) or len(value) > limit:
        raise WireError(f"{what} must be bin of at most {limit} bytes")
    return value


def node_id(value: object, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_NODE_ID_CHARS or (not value and not allow_empty):
        raise WireError(f"{what} must be a node id of at most {MAX_NODE_ID_CHARS} characters")
    return value


def field(m: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in m:
        raise WireError(f"{where}: missing field {key!r}")
    return m[key]


def entry_body_to_obj(entry: Entry) -> list[Any]:
    """[term, kind, data]: an entry whose index is implied by its position."""
    return [entry.term, int(entry.kind), entry.data]


def entry_body_from_obj(obj: object, index: int, max_data: int) -> Entry:
    if not isinstance(obj, list) or len(obj) != 3:
        raise WireError("an entry must be [term, kind, data]")
    term = uint(obj[0], "entry term")
    kind = obj[1]
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in EntryKind._value2member_map_:
        raise WireError(f"entry kind {kind!r} is unknown")
    data = blob(obj[2], "entry data", max_data)
    entry = Entry(index, term, EntryKind(kind), data)
    if entry.kind is EntryKind.NOOP and data:
        raise WireError("a no-op entry carries no data")
    if entry.kind is EntryKind.CONFIG:
        ConfigChange.decode(data)  # the core reads config entries: refuse bad ones here
    return entry


def entry_to_obj(entry: Entry) -> list[Any]:
    """[index, term, kind, data]: a self-describing entry (storage)."""
    return [entry.index, *entry_body_to_obj(entry)]


def entry_from_obj(obj: object, max_data: int) -> Entry:
    if not isinstance(obj, list) or len(obj) != 4:
        raise WireError("a stored entry must be [index, term, kind, data]")
    return entry_body_from_obj(obj[1:], uint(obj[0], "entry index"), max_data)


def snapshot_to_obj(snapshot: Snapshot) -> dict[str, Any]:
    return {"i": snapshot.index, "t": snapshot.term, "cfg": snapshot.configuration.to_obj(),
            "d": snapshot.data}


def snapshot_from_obj(obj: object, max_data: int) -> Snapshot:
    if not isinstance(obj, Mapping):
        raise WireError("a snapshot must be a map")
    return Snapshot(uint(field(obj, "i", "snapshot"), "snapshot index"),
                    uint(field(obj, "t", "snapshot"), "snapshot term"),
                    Configuration.from_obj(field(obj, "cfg", "snapshot")),
                    blob(field(obj, "d", "snapshot"), "snapshot data", max_data))


def hard_state_to_obj(state: HardState) -> dict[str, Any]:
    obj: dict[str, Any] = {"t": state.term, "v": state.vote, "c": state.commit}
    if state.catching_up:
        obj["u"] = True  # only then: the stored form of every other node stays as it was
    return obj


def hard_state_from_obj(obj: object) -> HardState:
    if not isinstance(obj, Mapping):
        raise WireError("a hard state must be a map")
    catching_up = obj.get("u", False)
    if not isinstance(catching_up, bool):
        raise WireError("a hard state's catching-up flag must be a boolean")
    return HardState(uint(field(obj, "t", "hard state"), "term"),
                     node_id(field(obj, "v", "hard state"), "vote", allow_empty=True),
                     uint(field(obj, "c", "hard state"), "commit"), catching_up)


GENERATION_KEY = "g"


def with_generation(obj: dict[str, Any], generation: Generation | None) -> dict[str, Any]:
    """A message map with the sender's generation, when it knows one (absent: it does not)."""
    if generation is not None:
        obj[GENERATION_KEY] = [generation.cluster, generation.epoch]
    return obj


def generation_of(m: Mapping[str, Any]) -> Generation | None:
    """The generation a message map carries, or None (a joiner's, or an older node's)."""
    raw = m.get(GENERATION_KEY)
    return None if raw is None else generation_from_obj(raw)
