"""A node's configuration: one frozen dataclass, every field with its unit, default and trade-off.

`NodeConfig()` carries the defaults of a single local keyserver. Each subsystem has its own typed
section (`membership`, `replication`), a frozen dataclass with its own `validate()`, defined next
to the code it configures. Every value has one way in: meshkp/node/settings/ reads the TOML
config file, the MESHKP_* environment and the options of `meshkp serve` (cli/serve.py), lays
them over these defaults and builds the NodeConfig once, before the node starts; nothing else
reads any of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from meshkp.control.config import ControlConfig
from meshkp.errors import ConfigError
from meshkp.http.access_log import AccessLogConfig
from meshkp.limits import Limits
from meshkp.membership.config import MembershipConfig
from meshkp.net.identity import validate_node_id
from meshkp.node import edge_checks
from meshkp.replication.config import ReplicationConfig

CONSISTENCY_LEVELS = ("one", "quorum", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# load_interval_s: below, the window holds too few requests for a p99; above, the agent
# check's weights and /cluster/load trail the load by more than a minute.
MIN_LOAD_INTERVAL_S = 0.2
MAX_LOAD_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a Node needs to start; `validate()` raises ConfigError naming the bad field."""

    # Directory of the LevelDB store, the node identity (node.key) and later admin.token.
    # Created on first start. One node per directory: LevelDB takes an exclusive lock.
    data_dir: Path = Path("./meshkp-data")
    # Address the HKP/HTTP listener binds to. 127.0.0.1 keeps a fresh install private;
    # use 0.0.0.0 (or a specific address) behind a reverse proxy or load balancer.
    host: str = "127.0.0.1"
    # HKP port. 11371 is the registered HKP port that gpg uses for hkp:// URLs without a port.
    # 0 asks the OS for a free port (tests); Node.http_port tells which one it got.
    http_port: int = 11371
    # Node id used in version vectors. None: derived from the node's Ed25519 identity in
    # data_dir (stable across restarts). Set it only to give nodes readable names in tests.
    node_id: str | None = None
    # Client-facing bounds (upload size, key size, search length, result caps): meshkp/limits.py.
    limits: Limits = field(default_factory=Limits)
    # x-consistency of POST /pks/add when the client does not send one. "one" replies once the
    # write is durable here; quorum/all wait for peers (replication, issue 5) at a latency cost.
    default_consistency: str = "one"
    # Root logger level.
    log_level: str = "INFO"
    # One line per HTTP request, queued on the event loop and written by a thread
    # (meshkp/http/access_log.py): ~3-4 µs of CPU a request, ~10% of a cached op=get
    # (docs/benchmarks.md, "The read path at the ceiling").
    access_log: bool = True
    # File the access log is appended to (reopened on SIGHUP, for logrotate); None = stderr.
    access_log_file: Path | None = None
    # Access log line format: kv (key=value, as every meshkp log line), common or combined (NCSA).
    access_log_format: str = "kv"
    # fsync every acknowledged write before replying (an acknowledged upload survives kill -9
    # and power loss). Off only for bulk tests; the group-commit writer keeps the cost shared.
    sync_writes: bool = True
    # Uploads at least this large are parsed and verified in a worker process instead of a
    # thread; 0 keeps every parse in a thread. Off by default: measured on 2 cores with slices of
    # debian-keyring, a process was no faster than a thread
    # from 256 KiB to 3 MiB (3 MiB: 0.9 s thread, 2.3 s process: pickling the certificates
    # back costs more than the second core gains) and the loop stayed responsive either way
    # (max lag ~30 ms). Turn it on for nodes that take many multi-MB uploads on idle cores.
    process_parse_bytes: int = 0
    # Worker processes for big parses; 0 = os.cpu_count(). Each holds a Python interpreter
    # (~30 MB), so keep it at or below the core count.
    parse_workers: int = 0
    # Bytes of armored keys kept in memory for op=get (LRU, invalidated on write). Hot keys are
    # then served without LevelDB or armor work. 64 MiB holds ~10,000 typical keys.
    served_cache_bytes: int = 64 * 1024 * 1024
    # Search results (index term -> fingerprints) kept in memory, invalidated per term on write.
    term_cache_entries: int = 50_000
    # Seconds a graceful stop waits for in-flight requests before closing connections.
    shutdown_timeout_s: float = 5.0
    # Seconds from a drain (PUT /cluster/routing drain=true) to GET /cluster/health answering
    # 503. The agent check says "drain" at once, so HAProxy sends no new request meanwhile and
    # the requests in flight finish; after it, health-check-only balancers and readiness
    # probes take the node out too, and 503 tells the operator the node may be stopped. Longer
    # covers slower requests (big uploads); 0 makes health 503 at once.
    drain_grace_s: float = 10.0
    # TCP port of the HAProxy agent-check responder (meshkp/http/agent_check.py): it answers
    # "up ready NN%" from the routing weight and the measured headroom, "drain", "maint" or
    # "down". 0: off. Announced to peers in the member meta, so `meshkp lb-config` finds it.
    agent_check_port: int = 0
    # Seconds between two samples of this node's load (GET /cluster/load), each sent to every
    # live peer. Shorter: fresher figures and agent weights, more small messages (n-1 per node
    # per interval); the window of every rate and quantile is this long.
    load_interval_s: float = 2.0
    # The admin credential of mutating /cluster/* calls. None: DATA_DIR/admin.token, created
    # (0600, 32 random bytes) on first start. Loaded once, at start.
    admin_token: str | None = None
    # CIDRs of the operator's own proxies and load balancers (--trusted-proxy): only their
    # X-Forwarded-For names the client, and requests that come only through them are exempt
    # from the rate limits (meshkp/http/clientaddr.py). Empty: every peer address is a client.
    trusted_proxies: tuple[str, ...] = ()
    # PEM certificate chain and private key (--tls-cert, --tls-key): the HKP listener then
    # speaks HKPS (TLS) instead of plain HTTP, on the same port. Both or neither.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # HOST:PORT of a separate admin listener (--admin-listen) serving /cluster/* and
    # /metrics, so the admin API need not face the internet; a bare port binds 127.0.0.1.
    # None: the HKP listener serves them too (the default, as before).
    admin_listen: str | None = None
    # The cluster keyring (`meshkp keygen`): encrypts and authenticates gossip and replication.
    # Every node of a mesh needs the same file. None: DATA_DIR/cluster.key, created on first
    # start, when the node is in a mesh; a node outside a mesh opens its replication listener
    # (for `replication.static_peers`) only when a key file is given.
    cluster_key_file: Path | None = None
    # Seconds a peer's frame send time may differ from our clock (meshkp/net/replay.py
    # ReplayLimits.max_skew): beyond it frames are dropped as reason "clock". Every node's clock
    # must agree within it; wider also means a captured frame stays replayable for longer to a
    # receiver that restarted. See docs/cluster-security.md "Replay protection".
    max_clock_skew_s: float = 30.0
    # Membership (SWIM gossip and discovery). None: the node runs alone and opens no gossip
    # socket. The mesh switch sets it (`--mesh`, or `enabled = true` in [cluster] of the
    # config file); nothing else switches it on.
    membership: MembershipConfig | None = None
    # Push gossip, anti-entropy and consistency. Always present: without peers it still keeps
    # the Merkle tree, deletes and conflicts of the local store.
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    # The control plane's Raft timers and voter count (meshkp/control/config.py). A node
    # without a mesh runs a one-node control plane and only needs the defaults.
    control: ControlConfig = field(default_factory=ControlConfig.lan)

    @property
    def access_log_config(self) -> AccessLogConfig:
        """The access log settings as the HTTP layer takes them."""
        return AccessLogConfig(enabled=self.access_log, path=self.access_log_file,
                               format=self.access_log_format)

    @property
    def in_mesh(self) -> bool:
        """True when this node runs membership (DESIGN.md "Membership")."""
        return self.membership is not None

    @property
    def has_cluster_key(self) -> bool:
        """True when the node loads a cluster keyring: it is in a mesh, or was given a key file."""
        return self.in_mesh or self.cluster_key_file is not None

    def validate(self) -> NodeConfig:
        """Return self if every field and relation is valid, else raise ConfigError."""
        if not str(self.data_dir):
            raise ConfigError("data_dir must not be empty: pass --data-dir DIR")
        if not self.host:
            raise ConfigError("host must not be empty: pass --host 127.0.0.1 or an address")
        if not isinstance(self.http_port, int) or not 0 <= self.http_port <= 65535:
            raise ConfigError(f"http_port must be 0..65535, got {self.http_port!r}")
        if self.node_id is not None:
            validate_node_id(self.node_id)
        self.limits.validate()
        if self.default_consistency not in CONSISTENCY_LEVELS:
            raise ConfigError(
                f"default_consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, "
                f"got {self.default_consistency!r}"
            )
        self.access_log_config.validate()
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        for name in ("process_parse_bytes", "parse_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("served_cache_bytes", "term_cache_entries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 disables the cache)")
        if self.shutdown_timeout_s < 0:
            raise ConfigError("shutdown_timeout_s must be >= 0")
        if self.drain_grace_s < 0:
            raise ConfigError("drain_grace_s must be >= 0 (0: health answers 503 at once)")
        if not isinstance(self.agent_check_port, int) or not 0 <= self.agent_check_port <= 65535:
            raise ConfigError(f"agent_check_port must be 0..65535 (0: off), "
                              f"got {self.agent_check_port!r}")
        if self.agent_check_port and self.agent_check_port == self.http_port:
            raise ConfigError("agent_check_port must differ from the HKP port: pick another")
        if not MIN_LOAD_INTERVAL_S <= self.load_interval_s <= MAX_LOAD_INTERVAL_S:
            raise ConfigError(f"load_interval_s must be {MIN_LOAD_INTERVAL_S}..{MAX_LOAD_INTERVAL_S}"
                              f" seconds, got {self.load_interval_s}")
        if not 0 < self.max_clock_skew_s <= 600:
            raise ConfigError("max_clock_skew must be within 0..10m (above it, frames captured "
                              f"minutes ago replay), got {self.max_clock_skew_s}")
        edge_checks.validate(self)
        sections = {"membership": self.membership, "replication": self.replication,
                    "control": self.control}
        for name, section in sections.items():
            if section is None:
                continue
            try:
                section.validate()
            except ConfigError as exc:
                raise ConfigError(f"[{name}] {exc}") from None
        if self.replication.static_peers and not self.has_cluster_key:
            raise ConfigError(
                "replication peers need the cluster key: pass --cluster-key-file FILE "
                "(the same file on every node), or run the node in a mesh with --mesh"
            )
        return self

    @property
    def numeric_log_level(self) -> int:
        return int(getattr(logging, self.log_level.upper()))
