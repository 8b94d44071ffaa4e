"""ControlConfig: every knob of the control plane's Raft log, with its unit, default and trade-off.

Durations are seconds of the monotonic clock the driver passes in as `now`. Defaults are a LAN
profile close to etcd's (heartbeat 100 ms, election 1 s) and give a new leader within ~2 s of a
leader's crash. Relations between fields are checked in `validate()`; the one that keeps the
leader lease honest is `lease_duration < election_timeout_min - max_clock_drift` (docs/control.md
"The clock-drift bound").

Nothing here changes what `apply` computes: values that must be equal on every node (audit
length, blacklist size) are constants of the state machine (meshkp/control/policy/bounds.py),
because two nodes with different configs must still apply the log identically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshkp.control.raft.messages import MAX_ENTRIES, MAX_ENTRIES_BYTES
from meshkp.errors import ConfigError

# Largest voter set a config may ask for. Raft's commit costs one round trip to a majority, and
# every voter more is one more follower the leader streams to and waits on; 9 tolerates 4
# failures, beyond which a keyserver mesh gains nothing but latency (etcd recommends <= 7).
MAX_VOTERS_BOUND = 9


@dataclass(frozen=True, slots=True)
class ControlConfig:
    # The leader sends an AppendEntries (a heartbeat when empty) to every follower this often.
    # Lower detects a dead leader no sooner (that is election_timeout_min) but renews the lease
    # more often and costs one message pair per follower per interval. etcd: 100 ms.
    heartbeat_interval: float = 0.1
    # A follower that hears nothing from a leader for a random time in
    # [election_timeout_min, election_timeout_max) starts a (pre-)election. Lower fails over
    # sooner; too close to the network's RTT makes healthy leaders lose elections. The range
    # spreads candidates so one usually wins alone (Raft §5.2). etcd: 1 s (x1..2 random).
    election_timeout_min: float = 1.0
    election_timeout_max: float = 2.0
    # The most that two nodes' monotonic clocks may disagree about the length of one
    # election_timeout_min interval (rate drift, not offset: only elapsed time matters). Quartz
    # drifts by ~1e-4, so 0.1 s per second is a wide margin that also covers VM clock
    # slewing. Beyond it, a leader may believe its lease after another leader is elected;
    # fencing tokens still refuse its writes (docs/control.md).
    max_clock_drift: float = 0.1
    # The leader answers reads of policy state, and "am I the leader", without a round trip for
    # this long after the send time of the last heartbeat a majority acknowledged. Must stay
    # below election_timeout_min - max_clock_drift: that is how long each acknowledging voter
    # promised not to help elect anyone else. Longer leases ride out more lost heartbeats.
    lease_duration: float = 0.8
    # Voters at most; other members are learners (they receive the log but neither vote nor
    # count for commit). More voters survive more failures, and every commit waits on more of
    # them. The default: 5 (survives 2 failures).
    max_voters: int = 5
    # Entries and bytes of entries in one AppendEntries. Bigger batches catch a follower up in
    # fewer round trips; smaller ones waste less when a follower rejects. hashicorp: 64.
    max_append_entries: int = 64
    max_append_bytes: int = 1024 * 1024
    # AppendEntries in flight to one follower that is keeping up (pipelining). Bounds what the
    # leader re-sends after a loss and what a slow follower's queue holds. etcd: 256 (of small
    # entries); policy changes are rare, so a few suffice.
    max_inflight_appends: int = 8
    # One proposed entry (an encoded command). A blacklist batch of a thousand fingerprints with
    # reasons is ~300 KB; without a bound one proposal could fill every node's log and memory.
    max_entry_bytes: int = 512 * 1024
    # Entries the leader holds appended but not yet committed; proposals beyond it are refused
    # (ProposalRefused) instead of queueing without bound while a majority is unreachable.
    max_uncommitted_entries: int = 256
    # Take a snapshot of the applied state once this many entries were applied since the last
    # one. Lower keeps the log (memory, restart replay) short; each snapshot encodes the whole
    # policy state (up to a few MB). hashicorp SnapshotThreshold: 8192; policy entries are big.
    snapshot_threshold: int = 1024
    # Entries kept in the log behind a snapshot, so a follower that is a little behind catches
    # up by log instead of by a full snapshot. hashicorp TrailingLogs: 10240.
    snapshot_trailing_entries: int = 256
    # A follower that has not acknowledged an InstallSnapshot within this long is sent it again
    # (the message or its reply was lost). Too low resends a multi-MB snapshot to a slow node.
    # Sooner (after election_timeout_min) when the follower answered a later heartbeat without
    # having installed it: then the snapshot was surely lost.
    snapshot_retry_interval: float = 5.0
    # A learner is promoted to voter only when its log is at most this many entries behind the
    # leader's: promoting a far-behind learner would stall commits until it caught up.
    promote_max_lag: int = 16
    # Autopilot (Consul's): a voter that SWIM has declared dead for this long is demoted so that
    # a healthy learner can take its seat. Lower heals sooner; too low demotes a voter that is
    # only rebooting. Consul: ServerStabilizationTime 10 s plus the dead-server cleanup.
    dead_voter_replace_after: float = 30.0
    # Autopilot promotes a learner only after it has been alive and caught up this long, so a
    # flapping node does not take a vote. Consul ServerStabilizationTime: 10 s.
    learner_stable_time: float = 10.0

    @classmethod
    def lan(cls) -> ControlConfig:
        """The defaults: a LAN or one data centre (RTT well under 10 ms)."""
        return cls()

    @classmethod
    def local(cls) -> ControlConfig:
        """One host or loopback (tests, `meshkp dev`): failover in about a second."""
        return dataclasses.replace(
            cls.lan(),
            heartbeat_interval=0.05,
            election_timeout_min=0.5,
            election_timeout_max=1.0,
            max_clock_drift=0.05,
            lease_duration=0.4,
            snapshot_retry_interval=2.0,
            dead_voter_replace_after=5.0,
            learner_stable_time=2.0,
        )

    def validate(self) -> ControlConfig:
        """Raise ConfigError naming the first bad value or relation; return self when valid."""
        for name in ("heartbeat_interval", "election_timeout_min", "election_timeout_max",
                     "lease_duration", "snapshot_retry_interval", "dead_voter_replace_after",
                     "learner_stable_time"):
            _positive_seconds(name, getattr(self, name))
        drift = self.max_clock_drift
        if not isinstance(drift, int | float) or isinstance(drift, bool) or drift < 0:
            raise ConfigError(f"control.max_clock_drift must be >= 0 seconds, got {drift!r}")
        for name in ("max_voters", "max_append_entries", "max_append_bytes",
                     "max_inflight_appends", "max_entry_bytes", "max_uncommitted_entries",
                     "snapshot_threshold", "promote_max_lag"):
            _positive_int(name, getattr(self, name))
        trailing = self.snapshot_trailing_entries
        if not isinstance(trailing, int) or isinstance(trailing, bool) or trailing < 0:
            raise ConfigError(f"control.snapshot_trailing_entries must be an int >= 0, got {trailing!r}")
        if self.election_timeout_max <= self.election_timeout_min:
            raise ConfigError(
                "control.election_timeout_max must be above election_timeout_min: the random "
                "spread is what lets one candidate win alone"
            )
        if drift >= self.election_timeout_min:
            raise ConfigError("control.max_clock_drift must be below election_timeout_min")
        if self.lease_duration >= self.election_timeout_min - drift:
            raise ConfigError(
                f"control.lease_duration ({self.lease_duration} s) must be below "
                f"election_timeout_min - max_clock_drift ({self.election_timeout_min - drift:g} s): "
                "a longer lease could outlive the voters' promise not to elect another leader"
            )
        if 2 * self.heartbeat_interval > self.lease_duration:
            raise ConfigError(
                "control.heartbeat_interval must be at most half of lease_duration, so that one "
                "lost heartbeat does not let the lease lapse (and far below election_timeout_min)"
            )
        if self.max_voters > MAX_VOTERS_BOUND:
            raise ConfigError(f"control.max_voters must be at most {MAX_VOTERS_BOUND}, got {self.max_voters}")
        if self.max_entry_bytes > self.max_append_bytes:
            raise ConfigError("control.max_entry_bytes must not exceed max_append_bytes, or an "
                              "entry could never be sent")
        if self.max_append_bytes > MAX_ENTRIES_BYTES:
            raise ConfigError(f"control.max_append_bytes must be at most {MAX_ENTRIES_BYTES} (the "
                              "wire bound of one AppendEntries)")
        if self.max_append_entries > MAX_ENTRIES:
            raise ConfigError(f"control.max_append_entries must be at most {MAX_ENTRIES} (the wire bound)")
        return self


def _positive_seconds(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"control.{name} must be a positive number of seconds, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"control.{name} must be a positive integer, got {value!r}")
