"""Replication counters and per-peer sync status: what /cluster/sync/status and /metrics show."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PeerSyncStatus:
    """The last anti-entropy round with one peer, and totals over all rounds."""

    node_id: str
    addr: str = ""
    last_sync_time: float | None = None  # wall clock (time.time()) at the end of the round
    last_result: str = "never"  # "in_sync", "synced", or "error: <reason>"
    last_duration_s: float = 0.0
    last_keys_pulled: int = 0
    last_keys_pushed: int = 0
    last_bytes_sent: int = 0
    last_bytes_received: int = 0
    rounds: int = 0
    errors: int = 0
    keys_pulled: int = 0
    keys_pushed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "addr": self.addr,
            "last_sync_time": self.last_sync_time,
            "last_result": self.last_result,
            "last_duration_s": round(self.last_duration_s, 4),
            "last": {
                "keys_pulled": self.last_keys_pulled,
                "keys_pushed": self.last_keys_pushed,
                "bytes_sent": self.last_bytes_sent,
                "bytes_received": self.last_bytes_received,
            },
            "total": {
                "rounds": self.rounds,
                "errors": self.errors,
                "keys_pulled": self.keys_pulled,
                "keys_pushed": self.keys_pushed,
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
            },
        }


@dataclass(slots=True)
class SyncProgress:
    """The round running now (bootstrap progress of a new node shows here)."""

    peer: str
    phase: str = "diff"  # diff -> pull -> push -> done
    started: float = 0.0
    to_pull: int = 0
    pulled: int = 0
    to_push: int = 0
    pushed: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "peer": self.peer,
            "phase": self.phase,
            "to_pull": self.to_pull,
            "pulled": self.pulled,
            "to_push": self.to_push,
            "pushed": self.pushed,
        }


@dataclass(slots=True)
class ReplicationCounters:
    """Monotonic counters since start (exported as Prometheus counters)."""

    bytes_out: int = 0
    bytes_in: int = 0
    pushes_sent: int = 0  # push batches acknowledged by a peer
    push_failures: int = 0  # push batches that did not reach their peer (dropped; repaired later)
    push_dropped: int = 0  # queued fingerprints dropped by the queue bound
    records_received: int = 0
    records_applied: int = 0  # received records that changed our state
    records_rejected: int = 0  # received records that failed validation
    batches_rejected: int = 0  # batches refused whole (bad frame or any invalid record)
    sync_rounds: int = 0
    sync_errors: int = 0
    lag_samples: list[float] = field(default_factory=list)  # recent push lag, seconds

    def to_json(self) -> dict[str, object]:
        return {
            name: getattr(self, name)
            for name in self.__slots__
            if name != "lag_samples"
        }
