"""The node's HTTP app over an in-memory store, for tests that serve it one way or another."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from meshkp.http.app import make_app
from meshkp.http.metrics import HttpMetrics
from meshkp.keys.commit import Committer
from meshkp.keys.parse import KeyParser
from meshkp.keys.service import KeyService
from meshkp.limits import Limits
from meshkp.store.executor import AsyncStore
from meshkp.store.memory import MemoryStore


@dataclass
class NodeApp:
    app: web.Application
    committer: Committer  # its `limits` is what an applied policy replaces
    metrics: HttpMetrics
    store: AsyncStore  # close it after the app


def node_app(limits: Limits, trusted: tuple[str, ...] = ()) -> NodeApp:
    store = AsyncStore(MemoryStore())
    committer = Committer(limits)
    service = KeyService(store, "n1", committer, KeyParser(committer, process_threshold=0))
    metrics = HttpMetrics()
    app = make_app(service, limits, metrics, trusted_proxies=trusted)
    return NodeApp(app, committer, metrics, store)
