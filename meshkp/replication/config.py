"""ReplicationConfig: every knob of push gossip, anti-entropy and consistency, with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from meshkp.errors import ConfigError
from meshkp.net.compression import COMPRESSIONS
from meshkp.net.wire import TCP_FRAME_BYTES
from meshkp.replication.messages import MAX_BATCH_RECORDS


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """Push, anti-entropy and consistency settings of one node (DESIGN.md "Replication")."""

    # Seconds between anti-entropy rounds with one random live peer. Push makes writes fast;
    # this bounds how long anything push missed (a dropped batch, a down node) stays missing.
    # A round between equal trees costs one round trip of ~600 bytes, so 10 s is cheap.
    sync_interval_s: float = 10.0
    # Random +/- fraction applied to each interval so that nodes started together do not
    # all sync at the same instant.
    sync_jitter: float = 0.2
    # Seconds after start before the first round (bootstrap of a new node begins here).
    first_sync_delay_s: float = 0.5
    # Peers each new record state is pushed to. With forward-while-new, a write reaches all
    # n nodes in about log_fanout(n) hops; 3 covers a 10-node mesh in 2-3 hops.
    fanout: int = 3
    # Peers the node that accepted a write pushes it to itself; 0 = every live peer. Forwards
    # use `fanout`. Random fanout alone leaves a node out now and then (measured: p99 = the
    # sync interval in a 10-node mesh); pushing a local write to all peers makes one hop the
    # common case, at n-1 sends per write: fine for meshes of tens of nodes.
    origin_fanout: int = 0
    # Fingerprints waiting to be pushed to one peer. The queue holds fingerprints only (the
    # record is read at send time), coalesced: a key changed twice is sent once. Beyond the
    # bound the oldest entry is dropped and counted; anti-entropy repairs it. Without the
    # bound a slow or dead peer would grow our memory with every write.
    push_queue_max: int = 50_000
    # Records in one push batch; one batch in flight per peer is the backpressure.
    push_batch_records: int = 256
    # Records asked for in one fetch during anti-entropy, and pushed per batch.
    sync_batch_records: int = 1000
    # Records per page of a bootstrap scan (an empty node pulling everything). Larger pages
    # amortise the Merkle tree's inner nodes over more records per write batch (~15% less
    # CPU per key at 4096 than at 1000); ~1.7 MB a page of typical keys, and batch_bytes
    # still bounds it. At most messages.MAX_BATCH_RECORDS.
    scan_batch_records: int = 4096
    # Soft cap of the record bytes in one batch or fetch reply: stays well under the TCP frame
    # bound (a larger single record travels alone; key_bytes <= 4 MiB keeps it under it).
    batch_bytes: int = 4 * 1024 * 1024
    # Seconds one request (push batch, diff step, fetch) may take before the peer is
    # considered unreachable for this round.
    request_timeout_s: float = 10.0
    # Seconds a quorum/all upload waits for acks before answering 503.
    consistency_timeout_s: float = 5.0
    # Which records received from peers are re-normalised (every self-signature verified,
    # signature cap checked) before they are stored, so a peer cannot store what POST
    # /pks/add would refuse: "all", "push" (gossip pushes of new writes, not anti-entropy
    # batches) or "none". Every record is always checked structurally (decodes, fingerprint
    # is its key's, sizes within Limits). Verifying costs ~1.5 ms per key, i.e. 150 s of one
    # core for a 100,000-key bootstrap, against the 60 s target; anti-entropy peers hold the
    # cluster key and are trusted for bulk, so "push" is the default. Only records that would
    # change our state are verified.
    verify_peer_records: str = "push"
    # An empty node copies a peer's stored records and index entries as they are (snapshot
    # bootstrap, meshkp/replication/snapshot.py: structural checks only, ~10x faster than
    # pulling). Off, or with verify_peer_records = "all", it pulls and validates every record.
    snapshot_bootstrap: bool = True
    # The Merkle diff of a round: "compact" (crdt/recon.py, protocol v3: a fanout-4 view of
    # the tree, salted 1-4 byte hashes, offers and a closing check; ~10x fewer bytes per
    # differing key than v1, under 100 B, in 6-8 round trips) or "merkle" (crdt/merkle_diff.py,
    # fanout 16 and 16-byte hashes, 3 round trips; what the oldest nodes speak). A compact
    # query to an older peer is refused at once, and the node then steps down to v2, then v1,
    # for that peer.
    diff_protocol: str = "compact"
    # A compact diff estimating at least max(this, a quarter of our keys) differing keys
    # stops and the round copies the peer's store instead (snapshot bootstrap, which keeps
    # what this node holds): a far-behind node does not descend and pull key by key. 0: never.
    far_behind_differences: int = 10_000
    # Records of keys new here in one received batch before they are validated and indexed in
    # the node's worker processes (meshkp/keys/pool.py; prepare.py) rather than a thread: below
    # it, the round trip to a worker (pickling both ways) costs more than the work it saves.
    # One Python process uses one core (GIL); a bootstrapping node spends ~3/4 of its CPU here,
    # so the workers roughly double its speed on two cores.
    prepare_min_batch: int = 200
    # Port of the replication TCP listener (encrypted with the cluster key); 0 picks one and
    # announces it in the membership meta ("sync").
    port: int = 0
    # Replication addresses ("host:port") of peers to use besides live membership (tests,
    # and nodes run without gossip).
    static_peers: tuple[str, ...] = ()
    # What this node does to the replication frames it sends to peers that decode marked
    # frames (meshkp/net/compression.py; every peer of this version does): "none", or "zlib"
    # (level 6, frames of 1 KiB and more). Measured on real keys, zlib takes key batches to
    # ~0.965 of their size for its CPU (docs/benchmarks.md), hence the default "none"; it pays
    # only on a slow or metered link between sites.
    compression: str = "none"

    def validate(self) -> ReplicationConfig:
        """Return self if every field is in range, else raise ConfigError naming it."""
        if not 0.05 <= self.sync_interval_s <= 86_400:
            raise ConfigError(f"sync_interval_s must be 0.05..86400 s, got {self.sync_interval_s}")
        if not 0 <= self.sync_jitter < 1:
            raise ConfigError(f"sync_jitter must be in [0, 1), got {self.sync_jitter}")
        if self.first_sync_delay_s < 0:
            raise ConfigError("first_sync_delay_s must be >= 0")
        if not 0 <= self.origin_fanout <= 1024:
            raise ConfigError(f"origin_fanout must be 0..1024 (0 = all), got {self.origin_fanout}")
        if not 1 <= self.fanout <= 64:
            raise ConfigError(f"fanout must be 1..64, got {self.fanout}")
        for name in ("push_queue_max", "push_batch_records", "sync_batch_records",
                     "scan_batch_records"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.scan_batch_records > MAX_BATCH_RECORDS:
            raise ConfigError(f"scan_batch_records must be <= {MAX_BATCH_RECORDS}")
        if not 64 * 1024 <= self.batch_bytes <= TCP_FRAME_BYTES // 2:
            raise ConfigError(
                f"batch_bytes must be 64 KiB..{TCP_FRAME_BYTES // 2} (half a TCP frame), "
                f"got {self.batch_bytes}"
            )
        for name in ("request_timeout_s", "consistency_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0")
        if self.verify_peer_records not in ("all", "push", "none"):
            raise ConfigError(
                f"verify_peer_records must be all, push or none, got {self.verify_peer_records!r}"
            )
        if self.diff_protocol not in ("compact", "merkle"):
            raise ConfigError(
                f"diff_protocol must be compact or merkle, got {self.diff_protocol!r}")
        if self.far_behind_differences < 0:
            raise ConfigError("far_behind_differences must be >= 0 (0: never)")
        if self.prepare_min_batch < 1:
            raise ConfigError("prepare_min_batch must be >= 1")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression must be one of {', '.join(COMPRESSIONS)}, "
                              f"got {self.compression!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"replication port must be 0..65535, got {self.port}")
        return self
