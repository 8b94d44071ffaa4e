"""Node: one keyserver process's parts wired together, with an idempotent start() and stop().

The constructor does no I/O (STYLE.md §9). start() creates the data directory, loads the
node identity (its id names this node's updates in version vectors), opens LevelDB behind
the async executor, builds the KeyService and the aiohttp app, and listens. stop() undoes it
in reverse order. Later layers (membership, replication) plug in through `setup_hooks`
(called at start with the node, before the HTTP listener opens, so they can add routes,
write hooks and tasks) and `spawn` (a tracked background task, cancelled by stop()).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from meshkp.config import NodeConfig
from meshkp.errors import ConfigError
from meshkp.http.app import KeyValueAccessLogger, make_app
from meshkp.http.app import access_log as http_access_log
from meshkp.http.metrics import HttpMetrics
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.net.identity import NodeIdentity, load_or_create_identity

log = logging.getLogger(__name__)

KEYS_DIR = "keys"  # LevelDB directory inside data_dir

SetupHook = Callable[["Node"], Awaitable[None] | None]
StopHook = Callable[["Node"], Awaitable[None] | None]


class Node:
    """A meshkp node; `await start()` to serve, `await stop()` to shut down (both idempotent)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.identity: NodeIdentity | None = None
        self.store: Any = None  # meshkp.store.executor.AsyncStore once started
        self.service: KeyService | None = None
        self.metrics = HttpMetrics()
        self.app: web.Application | None = None
        self.setup_hooks: list[SetupHook] = []
        self.stop_hooks: list[StopHook] = []
        self._parser: KeyParser | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._state = "new"  # new -> starting -> running -> stopping -> stopped
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and listen; a second call does nothing. ConfigError if misconfigured."""
        async with self._lock:
            if self._state != "new":
                return
            self._state = "starting"
            try:
                await self._start()
            except BaseException:
                await self._teardown()
                self._state = "stopped"
                self._stopped.set()
                raise
            self._state = "running"

    async def _start(self) -> None:
        config = self.config.validate()
        data_dir = Path(config.data_dir)
        loop = asyncio.get_running_loop()
        self.identity = await loop.run_in_executor(None, self._prepare_data_dir, data_dir)
        self.store = await loop.run_in_executor(None, _open_store, data_dir / KEYS_DIR, config)
        self._parser = KeyParser(config.limits, config.process_parse_bytes, config.parse_workers)
        self.service = KeyService(
            self.store, self.identity.node_id, config.limits, self._parser,
            served_cache_bytes=config.served_cache_bytes,
            term_cache_entries=config.term_cache_entries,
            sync_writes=config.sync_writes,
        )
        self.app = make_app(self.service, config.limits, self.metrics)
        for hook in self.setup_hooks:
            result = hook(self)
            if result is not None:
                await result
        self._runner = web.AppRunner(
            self.app,
            access_log_class=KeyValueAccessLogger,
            access_log=http_access_log if config.access_log else None,
            handle_signals=False,
            shutdown_timeout=config.shutdown_timeout_s,
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, config.host, config.http_port, reuse_address=True)
        try:
            await self._site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {config.host}:{config.http_port}: {exc.strerror or exc}; "
                "pick another --http-port or stop the process using it"
            ) from None
        log.info(
            "event=node_started node_id=%s http=%s data_dir=%s",
            self.identity.node_id, self.url, data_dir,
        )

    def _prepare_data_dir(self, data_dir: Path) -> NodeIdentity:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create data directory {data_dir}: {exc}") from None
        return load_or_create_identity(data_dir, self.config.node_id)

    async def stop(self) -> None:
        """Stop listening, cancel tasks, close the store; idempotent and safe after a failed start."""
        async with self._lock:
            if self._state in ("stopped", "new"):
                self._state = "stopped"
                self._stopped.set()
                return
            self._state = "stopping"
            await self._teardown()
            self._state = "stopped"
            self._stopped.set()
            log.info("event=node_stopped")

    async def _teardown(self) -> None:
        for hook in reversed(self.stop_hooks):
            try:
                result = hook(self)
                if result is not None:
                    await result
            except Exception:
                log.exception("event=stop_hook_failed hook=%r", hook)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._parser is not None:
            self._parser.close()
            self._parser = None
        if self.store is not None:
            store, self.store = self.store, None
            await _close_store(store)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- for other layers --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background task owned by the node: logged if it fails, cancelled by stop()."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=task_failed task=%s error=%r", task.get_name(), task.exception(),
                      exc_info=task.exception())

    @property
    def node_id(self) -> str:
        if self.identity is None:
            raise RuntimeError("node_id is known once the node has started")
        return self.identity.node_id

    @property
    def http_port(self) -> int:
        """The bound port (differs from config.http_port when that is 0)."""
        if self._site is None or self._runner is None:
            return self.config.http_port
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return self.config.http_port

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._state == "running"


def _open_store(path: Path, config: NodeConfig) -> Any:
    from meshkp.store.executor import AsyncStore
    from meshkp.store.leveldb import LevelDBStore

    return AsyncStore(LevelDBStore(path))


async def _close_store(store: Any) -> None:
    close = store.close
    result = close()
    if asyncio.iscoroutine(result):
        await result
