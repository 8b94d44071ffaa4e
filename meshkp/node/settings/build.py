"""Settings -> the node's config: defaults, the settings over them, and every check with its cause.

`resolve` is what `meshkp serve --config` and `meshkp config check` call. It builds the
NodeConfig and runs the dataclasses' own `validate()`, so the file, the environment and the
flags obey the same rules as code that builds a config by hand. A failed check is pinned on the
setting that causes it: the first setting whose field the message names and without which the
check passes, else the first setting without which it passes. That setting is put aside and the
checks run again, so one run reports every independent mistake; a later message that names a
field put aside is a consequence of an earlier one and is not repeated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshkp.control.config import ControlConfig
from meshkp.errors import ConfigError, InvalidSettings
from meshkp.limits import Limits
from meshkp.membership.config import MembershipConfig
from meshkp.net.addr import DEFAULT_GOSSIP_PORT
from meshkp.node.config import NodeConfig
from meshkp.node.settings.keys import KEYS
from meshkp.node.settings.layers import ENV, FILE, FLAG, Origin, Problem, Setting
from meshkp.replication.config import ReplicationConfig
from meshkp.swim.config import SwimConfig

# SwimConfig profiles by name: lan (memberlist's LAN defaults), local (one host), test (fast).
PROFILES: dict[str, Callable[[], SwimConfig]] = {
    "lan": SwimConfig.lan, "local": SwimConfig.local, "test": SwimConfig.test,
}
# ControlConfig profiles by name: lan (the defaults), local (one host: failover in ~1 s).
CONTROL_PROFILES: dict[str, Callable[[], ControlConfig]] = {
    "lan": ControlConfig.lan, "local": ControlConfig.local,
}
# The leader lease and the clock-drift bound, as fractions of election_timeout_min when
# heartbeat_timeout sets it: the ratios of the lan profile (0.8 s and 0.1 s of 1 s).
LEASE_FRACTION = 0.8
DRIFT_FRACTION = 0.1
# Target of --upload-bytes: the upload limit, with the key and packet limits lowered to fit.
UPLOAD_CAP = "upload_cap"
# Targets that only matter in a mesh.
MESH_ONLY = ("membership.", "swim.", "consensus.")
_DEFAULTS = NodeConfig()
_WORD = re.compile(r"[a-z][a-z0-9_]*")
_FLAG = re.compile(r"--[a-z][a-z-]*[a-z]")
_SECTION_PREFIX = re.compile(r"^\[[a-z]+\] (swim\.)?")
_SOURCE_ORDER = {FILE: 0, ENV: 1, FLAG: 2}
ALONE = "configures the mesh, but this node runs alone: add --mesh (or enabled = true in [cluster])"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The node's config, and what the settings hold beyond it."""

    config: NodeConfig
    # [cluster.consensus] as written (checked); NodeConfig.control holds what it maps to.
    consensus: Mapping[str, object]
    # Settings of the file or environment that only a mesh uses, on a node that runs alone.
    unused: tuple[Origin, ...]


class _Cause(ConfigError):
    """A check of this module that knows which target's setting fails it."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(message)
        self.target = target


def upload_limits(limits: Limits, upload_bytes: int) -> Limits:
    """`limits` with --upload-bytes applied: a key or packet can be no larger than an upload."""
    return dataclasses.replace(
        limits, upload_bytes=upload_bytes, key_bytes=min(limits.key_bytes, upload_bytes),
        packet_bytes=min(limits.packet_bytes, upload_bytes),
    )


def build(settings: Mapping[str, Setting]) -> Resolved:
    """The config `settings` describe over the defaults (not validated); ConfigError if it
    cannot be built."""
    values: dict[str, Any] = {target: setting.value for target, setting in settings.items()}
    mesh = bool(values.get("mesh", False))
    node = _fields(values, "node")
    limits = Limits()
    if UPLOAD_CAP in values:
        limits = upload_limits(limits, values[UPLOAD_CAP])
    limits = dataclasses.replace(limits, **_fields(values, "limits"))
    replication = _fields(values, "replication")
    membership = _membership(values, str(node.get("host", _DEFAULTS.host))) if mesh else None
    consensus = _consensus(values)
    config = NodeConfig(**node, limits=limits, membership=membership,
                        replication=dataclasses.replace(ReplicationConfig(), **replication),
                        control=_control(consensus))
    unused = () if mesh else tuple(dict.fromkeys(
        s.origin for t, s in settings.items() if t.startswith(MESH_ONLY) and s.origin.source != FLAG
    ))
    return Resolved(config, consensus, unused)


def resolve(settings: Mapping[str, Setting], problems: Iterable[Problem] = ()) -> Resolved:
    """The validated config of `settings`; InvalidSettings listing `problems` and every
    problem found here, each naming the setting that causes it."""
    found = list(problems)
    active = dict(settings)
    if not (active["mesh"].value if "mesh" in active else False):
        # A mesh option typed for a node that runs alone is a mistake (a file may keep them).
        for target in [t for t, s in active.items()
                       if t.startswith(MESH_ONLY) and s.origin.source == FLAG]:
            found.append(Problem(ALONE, active.pop(target).origin))
    resolved, failures = _check_all(active)
    found += failures
    if found or resolved is None:
        raise InvalidSettings([str(p) for p in sorted(found, key=_order)])
    return resolved


def _check_all(settings: Mapping[str, Setting]) -> tuple[Resolved | None, list[Problem]]:
    """Build and validate; on a failure put its cause aside and go on, up to every setting."""
    active = dict(settings)
    found: list[Problem] = []
    put_aside: set[str] = set()  # field names of the settings found at fault
    for _ in range(len(settings) + 1):
        try:
            return _checked(active), found
        except ConfigError as exc:
            origin = _cause(exc, active)
            if origin is None:
                return None, [*found, Problem(str(exc))]
            if not set(_WORD.findall(str(exc).lower())) & put_aside:  # else: a consequence
                found.append(Problem(_in_terms_of(str(exc), origin), origin))
            put_aside |= {_leaf(t) for t, s in active.items() if s.origin == origin}
            active = {t: s for t, s in active.items() if s.origin != origin}
    return None, found


# -- building ----------------------------------------------------------------------------------


def _fields(values: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The values of one section's targets, by field name (typed by their keys' kinds)."""
    prefix = section + "."
    return {t[len(prefix):]: v for t, v in values.items() if t.startswith(prefix)}


def _membership(values: Mapping[str, Any], http_host: str) -> MembershipConfig:
    fields = _fields(values, "membership")
    host = str(fields.pop("bind_host", http_host))
    gossip_port = fields.pop("gossip_port", DEFAULT_GOSSIP_PORT)
    advertise_port = fields.pop("advertise_port", None)
    if advertise_port is not None and advertise_port != gossip_port:
        raise _Cause("membership.advertise_port",
                     f"the port {advertise_port} is not the gossip port {gossip_port}: peers are "
                     "told the port this node binds, so give that port or none")
    swim = dataclasses.replace(PROFILES[fields.pop("profile", "lan")](), **_fields(values, "swim"))
    mdns = tuple(fields.pop("mdns_interfaces", ())) or None
    if mdns is None and host not in ("0.0.0.0", "::", ""):
        mdns = (host,)  # keep discovery on the interface we serve on (never leaks from lo)
    return MembershipConfig(bind_host=host, gossip_port=gossip_port, swim=swim,
                            mdns_interfaces=mdns, join=tuple(fields.pop("join", ())), **fields)


def _consensus(values: Mapping[str, Any]) -> dict[str, Any]:
    """[cluster.consensus], checked as hashicorp/raft checks these timers."""
    consensus = _fields(values, "consensus")
    for name in ("heartbeat_timeout", "election_timeout", "commit_timeout"):
        value = consensus.get(name)
        if isinstance(value, float) and value <= 0:
            raise _Cause(f"consensus.{name}", f"{name} must be longer than 0")
    heartbeat, commit = consensus.get("heartbeat_timeout"), consensus.get("commit_timeout")
    if isinstance(heartbeat, float) and isinstance(commit, float) and commit >= heartbeat:
        raise _Cause("consensus.commit_timeout",
                     f"commit_timeout ({commit:g}s) must be shorter than heartbeat_timeout "
                     f"({heartbeat:g}s): an idle leader speaks once per commit_timeout, and its "
                     "followers start an election after heartbeat_timeout without a word")
    return consensus


def _control(consensus: Mapping[str, Any]) -> ControlConfig:
    """ControlConfig from [cluster.consensus], with hashicorp/raft's names:

    - heartbeat_timeout: a follower that hears nothing from the leader this long may start an
      election: `election_timeout_min`. The lease and the drift bound scale with it;
    - election_timeout: a candidate without a majority this long tries again. The core has
      one random range for both waits; as in hashicorp/raft each wait is at most twice its
      timeout, so `election_timeout_max` is twice the longer of the two;
    - commit_timeout: how often an idle leader sends a heartbeat (`heartbeat_interval`);
    - snapshot_threshold / trailing_logs: snapshot after this many applied entries, keeping
      this many behind it (`snapshot_threshold`, `snapshot_trailing_entries`).
    """
    control = CONTROL_PROFILES[str(consensus.get("profile", "lan"))]()
    heartbeat = consensus.get("heartbeat_timeout")
    if isinstance(heartbeat, float):
        control = dataclasses.replace(
            control, election_timeout_min=heartbeat, election_timeout_max=2 * heartbeat,
            lease_duration=LEASE_FRACTION * heartbeat, max_clock_drift=DRIFT_FRACTION * heartbeat)
    election = consensus.get("election_timeout")
    if isinstance(election, float):
        top = 2 * max(election, control.election_timeout_min)
        control = dataclasses.replace(control, election_timeout_max=top)
    commit = consensus.get("commit_timeout")
    if isinstance(commit, float):
        control = dataclasses.replace(control, heartbeat_interval=commit)
    threshold, trailing = consensus.get("snapshot_threshold"), consensus.get("trailing_logs")
    if isinstance(threshold, int):
        control = dataclasses.replace(control, snapshot_threshold=threshold)
    if isinstance(trailing, int):
        control = dataclasses.replace(control, snapshot_trailing_entries=trailing)
    return control


def _checked(settings: Mapping[str, Setting]) -> Resolved:
    resolved = build(settings)
    resolved.config.validate()
    return resolved


# -- finding the cause of a failed check --------------------------------------------------------


def _cause(exc: ConfigError, settings: Mapping[str, Setting]) -> Origin | None:
    """The origin of the setting that makes `exc` happen, or None if no single one does."""
    if isinstance(exc, _Cause):
        return settings[exc.target].origin
    origins = sorted(dict.fromkeys(s.origin for s in settings.values()), key=_origin_order)
    words = _WORD.findall(str(exc).lower())
    named = sorted(
        (o for o in origins if any(_leaf(t) in words for t, s in settings.items() if s.origin == o)),
        key=lambda o: min(words.index(_leaf(t)) for t, s in settings.items()
                          if s.origin == o and _leaf(t) in words),
    )
    for origin in (*named, *origins):
        if _passes_without(origin, settings, str(exc)):
            return origin
    return None


def _passes_without(origin: Origin, settings: Mapping[str, Setting], message: str) -> bool:
    """True when, without the settings of `origin`, the check that said `message` passes."""
    try:
        _checked({t: s for t, s in settings.items() if s.origin != origin})
    except ConfigError as exc:
        return str(exc) != message
    return True


def _leaf(target: str) -> str:
    return target.rpartition(".")[2]


def _in_terms_of(message: str, origin: Origin) -> str:
    """`message` for a setting of the file or environment: flags it names get their key too."""
    if origin.source == FLAG:
        return message
    message = _SECTION_PREFIX.sub("", message)  # NodeConfig's section names are not the file's
    by_flag = {key.flag: key for key in KEYS if key.flag}

    def spell(match: re.Match[str]) -> str:
        key = by_flag.get(match.group(0))
        if key is None:
            return match.group(0)
        return f"{match.group(0)} ({key.env if origin.source == ENV else key.label})"

    return _FLAG.sub(spell, message)


def _origin_order(origin: Origin) -> tuple[int, int, str]:
    return (_SOURCE_ORDER.get(origin.source, 3), origin.line or 0, origin.label)


def _order(problem: Problem) -> tuple[int, int, str]:
    return _origin_order(problem.origin) if problem.origin else (-1, 0, "")
