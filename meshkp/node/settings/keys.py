"""Every key of the config file: its TOML path, kind, the config field it sets, and its flag.

One table for the file, the `MESHKP_*` environment and the docs. A key's *target* names the
field it sets, as "section.field" of the node's config: `node.*` (NodeConfig), `limits.*`,
`membership.*`, `swim.*` (membership's SwimConfig), `replication.*`, and the values that have no
dataclass field of their own: `mesh` (the mesh switch), `membership.profile` (the SwimConfig
profile the `swim.*` keys start from), `membership.advertise_port`
and `consensus.*` (read and checked; the control plane that will use them is not built yet).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshkp.http.access_log import FORMATS as ACCESS_LOG_FORMATS
from meshkp.limits import Limits
from meshkp.net.compression import COMPRESSIONS
from meshkp.node.config import CONSISTENCY_LEVELS, LOG_LEVELS
from meshkp.node.settings.kinds import (
    Address,
    Boolean,
    Choice,
    Duration,
    FilePath,
    Integer,
    Kind,
    Number,
    Size,
    Text,
    TextList,
)
from meshkp.swim.config import SwimConfig

ENV_PREFIX = "MESHKP_"
SWIM_PROFILES = ("lan", "local", "test")
# Replication-frame compression (meshkp/net/compression.py).
COMPRESSION_WHY = "sync batches are sent as they are or zlib-compressed"


@dataclass(frozen=True, slots=True)
class Key:
    """One config key. `target` is one field, or one per part of an Address ((host, port))."""

    path: str
    kind: Kind
    target: str | tuple[str, str]
    # The `meshkp serve` option that sets the same value, if there is one.
    flag: str | None = None
    # True for keys that only matter in a mesh: unused (and reported so) when the mesh is off.
    mesh_only: bool = False

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def label(self) -> str:
        """How messages name the key: "[cluster.replication] sync_interval"."""
        return f"[{self.section}] {self.name}"

    @property
    def env(self) -> str:
        """The environment variable of the key: MESHKP_ + its path, dots as _, upper case."""
        return ENV_PREFIX + self.path.replace(".", "_").upper()

    @property
    def targets(self) -> tuple[str, ...]:
        return self.target if isinstance(self.target, tuple) else (self.target,)

    def assign(self, value: object) -> dict[str, object]:
        """Target -> value for a parsed value (an Address sets its host, and its port if given)."""
        if isinstance(self.target, str):
            return {self.target: value}
        assert isinstance(value, tuple)
        return {target: part for target, part in zip(self.target, value, strict=True)
                if part is not None}


def _dataclass_keys(section: str, target: str, config: object, mesh_only: bool) -> list[Key]:
    """One key per field of a config dataclass, its kind read from the default's type."""
    keys = []
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        default = getattr(config, field.name)
        kind: Kind
        if isinstance(default, bool):
            kind = Boolean()
        elif isinstance(default, float):
            kind = Duration()  # every float of these dataclasses is seconds
        elif field.name.endswith("_bytes"):
            kind = Size()
        else:
            kind = Integer()
        keys.append(Key(f"{section}.{field.name}", kind, f"{target}.{field.name}",
                        mesh_only=mesh_only))
    return keys


KEYS: tuple[Key, ...] = (
    # [cluster]: the node's identity in the mesh and where it keeps its data. Meanings and
    # defaults of every key: docs/configuration.md (tested against this table).
    Key("cluster.enabled", Boolean(), "mesh", flag="--mesh"),
    Key("cluster.node_id", Text(), "node.node_id", flag="--node-id"),
    Key("cluster.bind_address", Address(), ("membership.bind_host", "membership.gossip_port"),
        flag="--gossip-port", mesh_only=True),
    Key("cluster.advertise_address", Address(ip_only=True),
        ("membership.advertise_host", "membership.advertise_port"),
        flag="--advertise-addr", mesh_only=True),
    Key("cluster.data_dir", FilePath(), "node.data_dir", flag="--data-dir"),
    Key("cluster.key_file", FilePath(), "node.cluster_key_file", flag="--cluster-key-file"),
    Key("cluster.name", Text(), "membership.cluster_name", flag="--cluster-name", mesh_only=True),
    Key("cluster.max_clock_skew", Duration(), "node.max_clock_skew_s"),
    # [cluster.consensus]: the control plane's Raft timers, named as hashicorp/raft names them.
    Key("cluster.consensus.algorithm", Choice(("raft",)), "consensus.algorithm", mesh_only=True),
    Key("cluster.consensus.profile", Choice(("lan", "local")), "consensus.profile",
        flag="--control-profile", mesh_only=True),
    Key("cluster.consensus.heartbeat_timeout", Duration(), "consensus.heartbeat_timeout",
        mesh_only=True),
    Key("cluster.consensus.election_timeout", Duration(), "consensus.election_timeout",
        mesh_only=True),
    Key("cluster.consensus.commit_timeout", Duration(), "consensus.commit_timeout",
        mesh_only=True),
    Key("cluster.consensus.snapshot_threshold", Integer(), "consensus.snapshot_threshold",
        mesh_only=True),
    Key("cluster.consensus.trailing_logs", Integer(), "consensus.trailing_logs", mesh_only=True),
    # [cluster.discovery]: how peers are found.
    Key("cluster.discovery.method", Choice(("static", "dns", "mdns")), "membership.discovery",
        flag="--discovery", mesh_only=True),
    Key("cluster.discovery.peers", TextList(), "membership.join", flag="--join", mesh_only=True),
    Key("cluster.discovery.mdns_interfaces", TextList(), "membership.mdns_interfaces",
        flag="--mdns-interface", mesh_only=True),
    # [cluster.replication]: push gossip and anti-entropy (ReplicationConfig).
    Key("cluster.replication.sync_interval", Duration(), "replication.sync_interval_s",
        flag="--sync-interval"),
    Key("cluster.replication.batch_size", Integer(), "replication.sync_batch_records"),
    Key("cluster.replication.compression", Choice(COMPRESSIONS, why=COMPRESSION_WHY),
        "replication.compression"),
    Key("cluster.replication.port", Integer(), "replication.port", flag="--replication-port"),
    Key("cluster.replication.peers", TextList(), "replication.static_peers",
        flag="--replication-peer"),
    Key("cluster.replication.fanout", Integer(), "replication.fanout", flag="--fanout"),
    Key("cluster.replication.origin_fanout", Integer(), "replication.origin_fanout"),
    Key("cluster.replication.verify_peer_records", Choice(("all", "push", "none")),
        "replication.verify_peer_records", flag="--verify-peer-records"),
    Key("cluster.replication.sync_jitter", Number(), "replication.sync_jitter"),
    Key("cluster.replication.first_sync_delay", Duration(), "replication.first_sync_delay_s"),
    Key("cluster.replication.snapshot_bootstrap", Boolean(), "replication.snapshot_bootstrap"),
    Key("cluster.replication.diff_protocol", Choice(("compact", "merkle")),
        "replication.diff_protocol"),
    Key("cluster.replication.far_behind_differences", Integer(),
        "replication.far_behind_differences"),
    Key("cluster.replication.push_queue_max", Integer(), "replication.push_queue_max"),
    Key("cluster.replication.push_batch_records", Integer(), "replication.push_batch_records"),
    Key("cluster.replication.scan_batch_records", Integer(), "replication.scan_batch_records"),
    Key("cluster.replication.batch_bytes", Size(), "replication.batch_bytes"),
    Key("cluster.replication.request_timeout", Duration(), "replication.request_timeout_s"),
    Key("cluster.replication.consistency_timeout", Duration(),
        "replication.consistency_timeout_s"),
    # [hkp]: the HKP and /cluster/* listener, and the write path behind it (NodeConfig).
    Key("hkp.host", Text(), "node.host", flag="--host"),
    Key("hkp.port", Integer(), "node.http_port", flag="--http-port"),
    Key("hkp.default_consistency", Choice(CONSISTENCY_LEVELS), "node.default_consistency",
        flag="--consistency"),
    Key("hkp.sync_writes", Boolean(), "node.sync_writes"),
    Key("hkp.shutdown_timeout", Duration(), "node.shutdown_timeout_s"),
    Key("hkp.process_parse_bytes", Size(), "node.process_parse_bytes"),
    Key("hkp.parse_workers", Integer(), "node.parse_workers"),
    Key("hkp.agent_check_port", Integer(), "node.agent_check_port", flag="--agent-check-port"),
    Key("hkp.drain_grace", Duration(), "node.drain_grace_s", flag="--drain-grace"),
    Key("hkp.load_interval", Duration(), "node.load_interval_s"),
    Key("hkp.trusted_proxies", TextList(), "node.trusted_proxies", flag="--trusted-proxy"),
    Key("hkp.tls_cert", FilePath(), "node.tls_cert", flag="--tls-cert"),
    Key("hkp.tls_key", FilePath(), "node.tls_key", flag="--tls-key"),
    Key("hkp.admin_listen", Text(), "node.admin_listen", flag="--admin-listen"),
    # [limits]: every bound of meshkp/limits.py.
    *_dataclass_keys("limits", "limits", Limits(), mesh_only=False),
    # [membership]: the SWIM profile, then any of its timers (SwimConfig).
    Key("membership.profile", Choice(SWIM_PROFILES), "membership.profile",
        flag="--gossip-profile", mesh_only=True),
    *_dataclass_keys("membership", "swim", SwimConfig.lan(), mesh_only=True),
    # [cache]: the key service's memory.
    Key("cache.served_cache_bytes", Size(), "node.served_cache_bytes"),
    Key("cache.term_cache_entries", Integer(), "node.term_cache_entries"),
    # [log]
    Key("log.level", Choice(LOG_LEVELS, upper=True), "node.log_level", flag="--log-level"),
    Key("log.access_log", Boolean(), "node.access_log", flag="--access-log"),
    Key("log.access_log_file", FilePath(), "node.access_log_file", flag="--access-log-file"),
    Key("log.access_log_format", Choice(ACCESS_LOG_FORMATS), "node.access_log_format",
        flag="--access-log-format"),
)

KEYS_BY_PATH: dict[str, Key] = {key.path: key for key in KEYS}
KEYS_BY_ENV: dict[str, Key] = {key.env: key for key in KEYS}
# Every table a file may have, parents included ("cluster" for "cluster.discovery").
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(
    ".".join(key.path.split(".")[:depth])
    for key in KEYS for depth in range(1, key.path.count(".") + 1)
))
