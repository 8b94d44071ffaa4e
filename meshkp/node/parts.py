"""The local parts of a Node, each with its start and its stop written together.

Each function is a context manager that the Node enters into its AsyncExitStack: what it
yields is the running part, and leaving it stops that part. A part whose start failed is not
entered, so it is never stopped (aiohttp's `cleanup_ctx` idea). Mesh parts live in
meshkp/node/mesh_parts.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from meshkp.bulk.datadir import store_path
from meshkp.errors import ConfigError
from meshkp.http.access_log import AccessLogCollector, AccessLogSink, logger_class_for
from meshkp.http.admin_listener import AdminSplit
from meshkp.http.app import GUARD_KEY
from meshkp.http.connguard import GuardedSite
from meshkp.http.metrics import HttpMetrics
from meshkp.http.server_limits import RUNNER_LIMITS
from meshkp.http.tls import ServerTls
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.pool import WorkerPool, default_workers
from meshkp.keys.service import KeyService
from meshkp.net.crypto import Keyring, generate_key, load_keyring, write_key_file
from meshkp.net.identity import NodeIdentity, load_or_create_identity
from meshkp.node.config import NodeConfig
from meshkp.node.edge_checks import admin_address
from meshkp.store.executor import AsyncStore
from meshkp.store.leveldb import LevelDBStore

log = logging.getLogger(__name__)
# aiohttp wants a Logger to enable access logging; our logger class writes to the sink instead.
ACCESS_LOGGER = logging.getLogger("meshkp.access")

DEFAULT_KEY_FILE = "cluster.key"  # the cluster keyring inside data_dir when none is configured


def prepare_data_dir(config: NodeConfig) -> NodeIdentity:
    """Create the data directory if needed; the node identity kept in it (blocking)."""
    data_dir = Path(config.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {data_dir}: {exc}") from None
    return load_or_create_identity(data_dir, config.node_id)


def cluster_key_path(config: NodeConfig) -> Path:
    """The cluster key file of config (--cluster-key-file, or DATA_DIR/cluster.key)."""
    return config.cluster_key_file or Path(config.data_dir) / DEFAULT_KEY_FILE


def load_cluster_keyring(config: NodeConfig) -> Keyring:
    """The cluster keyring of config (blocking); created with one fresh key if the file is missing."""
    path = cluster_key_path(config)
    if not path.exists():
        write_key_file(path, [generate_key()], overwrite=False)
        log.warning("event=cluster_key_created path=%s hint=copy_this_file_to_every_node", path)
    return load_keyring(path)


@asynccontextmanager
async def open_store(data_dir: Path) -> AsyncIterator[AsyncStore]:
    """The node's LevelDB behind the async executor; closed (lock released) on exit."""
    loop = asyncio.get_running_loop()
    raw = await loop.run_in_executor(None, LevelDBStore, store_path(data_dir))
    store = AsyncStore(raw)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def worker_pool(config: NodeConfig) -> AsyncIterator[WorkerPool]:
    """The node's CPU pool (processes start with its first job); its workers stop on exit."""
    pool = WorkerPool(config.parse_workers or default_workers())
    try:
        yield pool
    finally:
        await pool.close()


def key_service(
    config: NodeConfig, store: AsyncStore, identity: NodeIdentity, committer: Committer,
    pool: WorkerPool,
) -> KeyService:
    """The KeyService over the store, committing through `committer` (it observes its commits)."""
    return KeyService(
        store, identity.node_id, committer, KeyParser(committer, config.process_parse_bytes, pool),
        served_cache_bytes=config.served_cache_bytes,
        term_cache_entries=config.term_cache_entries,
        sync_writes=config.sync_writes,
    )


class HttpListener:
    """The running HTTP listener of a node: its runner, its access log and the port it got;
    `admin`, the address of the admin listener when there is one."""

    def __init__(self, runner: web.AppRunner, fallback_port: int, access: AccessLogSink | None,
                 admin: tuple[str, int] | None = None, tls: ServerTls | None = None) -> None:
        self.runner = runner
        self.access = access
        self.admin = admin
        self.tls = tls  # HKPS: its certificate is re-read on SIGHUP
        self._fallback_port = fallback_port

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when config.http_port is 0)."""
        for address in self.runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return self._fallback_port


@asynccontextmanager
async def access_log(config: NodeConfig, metrics: HttpMetrics) -> AsyncIterator[AccessLogSink | None]:
    """The access log's writer thread (None when the log is off); drained and closed on exit."""
    if not config.access_log:
        yield None
        return
    sink = AccessLogSink(config.access_log_config)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sink.start)
    collector = AccessLogCollector(sink)
    metrics.registry.register(collector)
    try:
        yield sink
    finally:
        metrics.registry.unregister(collector)
        await loop.run_in_executor(None, sink.close)


@asynccontextmanager
async def serve_http(
    config: NodeConfig, app: web.Application, access: AccessLogSink | None
) -> AsyncIterator[HttpListener]:
    """Listen on config.host:http_port; on exit stop listening and let requests finish."""
    if access is not None:
        logging_args: dict[str, Any] = {"access_log_class": logger_class_for(access),
                                        "access_log": ACCESS_LOGGER}
    else:
        logging_args = {"access_log": None}
    split = AdminSplit() if config.admin_listen is not None else None
    if split is not None:
        app.middlewares.append(split.middleware)  # before the runner freezes the app
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=config.shutdown_timeout_s,
                           **RUNNER_LIMITS, **logging_args)
    await runner.setup()
    try:
        tls = (ServerTls(config.tls_cert, config.tls_key)
               if config.tls_cert is not None and config.tls_key is not None else None)
        site = GuardedSite(runner, config.host, config.http_port, app[GUARD_KEY],
                           reuse_address=True, ssl_context=tls.context if tls else None)
        await _start_site(site, config.host, config.http_port, "--http-port")
        admin = None
        if split is not None and config.admin_listen is not None:
            host, port = admin_address(config.admin_listen)
            admin_site = web.TCPSite(runner, host, port, reuse_address=True)
            await _start_site(admin_site, host, port, "--admin-listen")
            admin = (host, admin_site.port)
            split.admin_sockets |= {sockname[:2] for sockname in _socknames(admin_site)}
            log.info("event=admin_listening address=%s:%d", host, admin_site.port)
        yield HttpListener(runner, config.http_port, access, admin, tls)
    finally:
        await runner.cleanup()


async def _start_site(site: web.TCPSite, host: str, port: int, option: str) -> None:
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another "
                          f"{option} or stop the process using it") from None


def _socknames(site: web.TCPSite) -> list[tuple[str, int]]:
    server = site._server  # aiohttp keeps the asyncio Server here and has no public accessor
    sockets = getattr(server, "sockets", None) or ()
    return [tuple(sock.getsockname()[:2]) for sock in sockets]
