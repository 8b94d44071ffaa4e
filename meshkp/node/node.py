"""Node: one keyserver process's parts, declared as typed fields and built in one place.

The constructor does no I/O (STYLE.md §9). `start()` builds the parts in dependency order:
data directory and identity, admin token, LevelDB store, key service, cluster keyring,
membership (in a mesh only), replication, and last the HTTP listener. Each part is entered into
one AsyncExitStack with its start and its stop written together (meshkp/node/parts.py and
mesh_parts.py); the HTTP routes are added once every service they call exists. So
`stop()`, or a start that failed half-way, stops exactly what started, in reverse order: the
HTTP listener first (in-flight requests finish while replication still runs), the store last.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from meshkp.bulk.datadir import store_path
from meshkp.control.driver.plane import ControlPlane
from meshkp.http.app import make_app
from meshkp.http.auth import AdminAuth, load_or_create_token, require_admin
from meshkp.http.backup import BackupHandler
from meshkp.http.cluster import ClusterHandlers
from meshkp.http.cluster_sync import ClusterSyncHandlers
from meshkp.http.consistency import Consistency
from meshkp.http.control import ControlHandlers
from meshkp.http.control_metrics import ControlMetrics
from meshkp.http.metrics import HttpMetrics
from meshkp.http.writer_metrics import WriterMetrics
from meshkp.keys.commit import Committer
from meshkp.keys.pool import WorkerPool
from meshkp.keys.service import KeyService
from meshkp.membership.metrics import MembershipMetrics
from meshkp.membership.service import MembershipService
from meshkp.net.crypto import Keyring, reload_keyring
from meshkp.net.frameauth import FrameAuth
from meshkp.net.identity import NodeIdentity
from meshkp.net.replay import ReplayLimits
from meshkp.node import control_parts, load_parts, mesh_parts, metrics_parts, parts, policy_parts
from meshkp.node.config import NodeConfig
from meshkp.replication.metrics import ReplicationMetrics
from meshkp.replication.replicator import Replicator
from meshkp.replication.transport import MembershipPeers
from meshkp.store.executor import AsyncStore

log = logging.getLogger(__name__)


class Node:
    """A meshkp node; `await start()` to serve, `await stop()` to shut down (both idempotent)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.metrics = HttpMetrics()
        # Set by start(), in this order; None again after stop().
        self.identity: NodeIdentity | None = None
        self.admin_token: str | None = None
        # The admin check of every endpoint (its bootstrap token is re-read on SIGHUP).
        self.admin_auth: AdminAuth | None = None
        self.store: AsyncStore | None = None
        # The one commit path of every key write (its observers: the key service's caches and
        # replication's push queue), and the CPU pool of parsing and peer records.
        self.committer: Committer | None = None
        self.pool: WorkerPool | None = None
        self.keys: KeyService | None = None
        self.keyring: Keyring | None = None  # only with a cluster key (mesh or --cluster-key-file)
        # Signs every frame this node sends and checks its peers' (with the keyring).
        self.frame_auth: FrameAuth | None = None
        self.membership: MembershipService | None = None  # only in a mesh
        self.replicator: Replicator | None = None
        self.policy: policy_parts.PolicyEffects | None = None
        # The cluster policy's Raft log (a one-node cluster without a mesh).
        self.control: ControlPlane | None = None
        self.app: web.Application | None = None
        # Load sampling, the load exchange and the agent check (GET /cluster/load).
        self.load: load_parts.LoadPart | None = None
        self.http: parts.HttpListener | None = None
        self._stack: AsyncExitStack | None = None
        self._state = "new"  # new -> starting -> running -> stopping -> stopped
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Build and start every part; a second call does nothing. ConfigError if misconfigured."""
        async with self._lock:
            if self._state != "new":
                return
            self._state = "starting"
            stack = AsyncExitStack()
            try:
                await self._build(stack, self.config.validate())
            except BaseException:
                await stack.aclose()
                self._clear()
                self._state = "stopped"
                self._stopped.set()
                raise
            self._stack = stack
            self._state = "running"

    async def _build(self, stack: AsyncExitStack, config: NodeConfig) -> None:
        loop = asyncio.get_running_loop()
        data_dir = Path(config.data_dir)
        self.identity = identity = await loop.run_in_executor(None, parts.prepare_data_dir, config)
        self.admin_token = token = await loop.run_in_executor(
            None, load_or_create_token, data_dir, config.admin_token
        )
        self.store = await stack.enter_async_context(parts.open_store(data_dir))
        self.committer = Committer(config.limits)
        self.pool = await stack.enter_async_context(parts.worker_pool(config))
        self.keys = parts.key_service(config, self.store, identity, self.committer, self.pool)
        if config.has_cluster_key:
            self.keyring = await loop.run_in_executor(None, parts.load_cluster_keyring, config)
            self.frame_auth = FrameAuth(identity,
                                        replay=ReplayLimits(max_skew=config.max_clock_skew_s))
        if self.frame_auth is not None and config.membership is not None:
            self.membership = await stack.enter_async_context(
                mesh_parts.run_membership(config, self.frame_auth, self.keyring)
            )
        self.replicator = await stack.enter_async_context(mesh_parts.run_replication(
            config, identity.node_id, self.store, self.committer, self.pool, self.keyring,
            self.membership, self.frame_auth,
        ))
        consistency = Consistency(self.replicator, config.default_consistency)
        self.app = make_app(self.keys, config.limits, self.metrics, consistency,
                            trusted_proxies=config.trusted_proxies)
        # The applied cluster policy's effects (meshkp/node/policy_parts.py); the control
        # plane, once it runs, is plugged in with self.policy.attach(plane).
        self.policy = policy = policy_parts.PolicyEffects(
            identity.node_id, self.committer, self.keys, self.replicator, self.store, self.membership,
            drain_grace_s=config.drain_grace_s,
            peer_keys=self.frame_auth.peers if self.frame_auth is not None else None)
        # A peer's delete must be signed by an admin of the applied policy (adminkey.py).
        self.replicator.admin_table = lambda: policy.state
        self.admin_auth = auth = policy.auth(token)
        auth.source = functools.partial(load_or_create_token, data_dir, config.admin_token)
        policy.register(self.app, auth)
        await stack.enter_async_context(policy.running())
        if control_parts.runs_control(config):
            # Entered after the policy's background work, so it stops first.
            self.control = await stack.enter_async_context(control_parts.run_control(
                config, identity.node_id, self.store, token, self.keyring, self.membership,
                self.frame_auth,
            ))
            policy.attach(self.control)
            if isinstance(self.replicator.peers, MembershipPeers):
                plane = self.control
                self.replicator.peers.configured = lambda: len(plane.core.configuration.members())
        cluster = ClusterHandlers(self.membership, auth, on_leave=self.stop,
                                  node_id=identity.node_id, gate=policy.gate,
                                  bootstrap=self.replicator.bootstrap_status)
        cluster.register(self.app)
        stack.push_async_callback(cluster.close)  # a running leave broadcast finishes first
        if self.membership is not None:
            self.metrics.registry.register(self.membership.stats.collector())
            self.metrics.registry.register(MembershipMetrics(self.membership))
        ClusterSyncHandlers(self.replicator, auth, policy).register(self.app)
        BackupHandler(identity.node_id, self.store, auth, lambda: policy.state,
                      self.committer.merkle, self.replicator.bootstrap_status).register(self.app)
        if self.control is not None:
            ControlHandlers(self.control, actor=lambda request: require_admin(request, auth),
                            http_of=self._http_of).register(self.app)
            ControlMetrics(self.control, self.metrics.registry)
        ReplicationMetrics(self.replicator, self.metrics.registry)
        await stack.enter_async_context(metrics_parts.run_store_gauges(
            store_path(data_dir), self.store, self.metrics.registry))
        self.load = await stack.enter_async_context(load_parts.run_load(
            config, identity.node_id, self.app, self.metrics, self.replicator, self.control,
            policy.gate, self.membership, self._open_connections))
        WriterMetrics(self.store.stats, self.metrics.registry)
        access = await stack.enter_async_context(parts.access_log(config, self.metrics))
        self.http = await stack.enter_async_context(parts.serve_http(config, self.app, access))
        if self.membership is not None and config.membership is not None and config.http_port == 0:
            # The real port is known only now: gossip it so that peers' /cluster/nodes show it.
            self.membership.update_meta(
                mesh_parts.http_meta(config, config.membership, self.http.port)
            )
        log.info("event=node_started node_id=%s http=%s data_dir=%s mesh=%s",
                 identity.node_id, self.url, data_dir, self.membership is not None)

    async def stop(self) -> None:
        """Stop every part that started, in reverse order; idempotent, safe after a failed start."""
        async with self._lock:
            if self._state in ("stopped", "new"):
                self._state = "stopped"
                self._stopped.set()
                return
            self._state = "stopping"
            stack, self._stack = self._stack, None
            if stack is not None:
                await stack.aclose()
            self._clear()
            self._state = "stopped"
            self._stopped.set()
            log.info("event=node_stopped")

    def _clear(self) -> None:
        self.store = self.committer = self.pool = self.keys = self.keyring = None
        self.frame_auth = None
        self.membership = self.replicator = self.policy = self.control = self.app = self.http = None
        self.load = None
        self.admin_auth = None

    def _open_connections(self) -> int:
        """Connections open on the HTTP listener (idle keep-alive ones included)."""
        server = self.http.runner.server if self.http is not None else None
        return len(server.connections) if server is not None else 0

    def _http_of(self, node_id: str) -> str | None:
        """The HKP address a member announced (for 503s and /cluster/leader), if known."""
        if self.membership is None:
            return self.url if self.identity is not None and node_id == self.node_id else None
        for member in self.membership.members():
            if member.node_id == node_id:
                return member.meta.get(mesh_parts.HTTP_META_KEY) or None
        return None

    def reload(self) -> None:
        """SIGHUP: reopen the access log, re-read the admin token, the cluster keyring and the
        HKPS certificate (rotation and renewal, no restart)."""
        self.reopen_logs()
        if self.http is not None and self.http.tls is not None:
            self.http.tls.reload()
        if self.admin_auth is not None:
            self.admin_auth.reload()
        if self.keyring is not None:
            reload_keyring(self.keyring, parts.cluster_key_path(self.config))

    def reopen_logs(self) -> None:
        """Reopen the access log file (SIGHUP, after logrotate moved it)."""
        if self.http is not None and self.http.access is not None:
            self.http.access.reopen()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- views -------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        if self.identity is None:
            raise RuntimeError("node_id is known once the node has started")
        return self.identity.node_id

    @property
    def http_port(self) -> int:
        """The bound port (differs from config.http_port when that is 0)."""
        return self.http.port if self.http is not None else self.config.http_port

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.config.tls_cert is not None else "http"
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def admin_url(self) -> str | None:
        """The admin listener's URL (--admin-listen), or None when the HKP port serves it."""
        admin = self.http.admin if self.http is not None else None
        if admin is None:
            return None
        host = f"[{admin[0]}]" if ":" in admin[0] else admin[0]
        return f"http://{host}:{admin[1]}"

    @property
    def running(self) -> bool:
        return self._state == "running"
