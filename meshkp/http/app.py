"""The aiohttp application of a node: HKP routes, /metrics, and the edge every request
passes (meshkp/http/edge.py: error mapping, metrics, rate limits, connection fate).

Other layers add their routes (e.g. /cluster/*) to the app `make_app` returns before the
node starts serving; they raise MeshkpError subclasses and the edge maps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from meshkp.http.clientaddr import ClientResolver
from meshkp.http.connguard import ConnectionGuard
from meshkp.http.consistency import CONSISTENCY_KEY, Consistency
from meshkp.http.edge import Edge
from meshkp.http.hkp import HkpHandlers
from meshkp.http.metrics import CONTENT_TYPE, HttpMetrics
from meshkp.http.ratelimit import RateLimiter
from meshkp.keys.service import KeyService
from meshkp.limits import Limits

SERVICE_KEY = web.AppKey("meshkp.service", KeyService)
METRICS_KEY = web.AppKey("meshkp.metrics", HttpMetrics)
GUARD_KEY = web.AppKey("meshkp.connection_guard", ConnectionGuard)
EDGE_KEY = web.AppKey("meshkp.edge", Edge)


async def _metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    metrics = request.app[METRICS_KEY]
    stats = await service.stats()
    metrics.keys.set(float(stats["keys"]))  # type: ignore[arg-type]
    metrics.served_cache_entries.set(len(service.served))
    metrics.served_cache_bytes.set(service.served.bytes)
    metrics.served_cache_hits.set(service.served.hits)
    metrics.served_cache_misses.set(service.served.misses)
    metrics.term_cache_entries.set(len(service.terms))
    metrics.term_cache_hits.set(service.terms.hits)
    metrics.term_cache_misses.set(service.terms.misses)
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def _root(request: web.Request) -> web.Response:
    return web.Response(
        text=(
            "meshkp OpenPGP keyserver (HKP).\n"
            "  gpg --keyserver hkp://HOST:PORT --search-keys NAME\n"
            "  GET  /pks/lookup?op=get|index|vindex|stats|hget&search=...\n"
            "  POST /pks/add (keytext=...)\n"
        ),
        content_type="text/plain",
    )


def make_app(
    service: KeyService,
    limits: Limits,
    metrics: HttpMetrics | None = None,
    consistency: Consistency | None = None,
    trusted_proxies: Sequence[str] = (),
    rate_limits: bool = True,
) -> web.Application:
    """The node's HTTP application (no I/O until a runner starts it).

    `consistency`: replication's acks for x-consistency on POST /pks/add (None: ignored).
    `trusted_proxies`: CIDRs whose X-Forwarded-For names the client, exempt from rate limits;
    `rate_limits` False leaves them out (benchmarks measure their cost against it).
    """
    metrics = metrics or HttpMetrics()
    resolver = ClientResolver(trusted_proxies)
    limiter = RateLimiter(service.limits, metrics.registry) if rate_limits else None
    # The listener's connection caps (the runner's site applies them: meshkp/node/parts.py).
    guard = ConnectionGuard(lambda: service.limits, resolver, metrics.registry,
                            banned=limiter.is_banned if limiter is not None else None)
    # client_max_size bounds every body aiohttp buffers (request.read/post) while reading, so
    # a chunked upload without Content-Length cannot grow past the limit either.
    app = web.Application(client_max_size=limits.upload_bytes)
    app[EDGE_KEY] = edge = Edge(lambda: service.limits, metrics, resolver, guard, limiter)
    edge.install(app)
    app[GUARD_KEY] = guard
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = metrics
    if consistency is not None:
        app[CONSISTENCY_KEY] = consistency
    HkpHandlers(service, metrics).register(app)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", _root)
    return app
