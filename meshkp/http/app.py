"""The aiohttp application of a node: HKP routes, /metrics, error mapping, access logs.

Other layers add their routes (e.g. /cluster/*) to the app `make_app` returns before the
node starts serving; they raise MeshkpError subclasses and this middleware maps them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_protocol import RequestPayloadError

from meshkp.errors import MeshkpError, Overloaded, StoreFull
from meshkp.http.clientaddr import ClientResolver
from meshkp.http.connguard import ConnectionGuard
from meshkp.http.consistency import CONSISTENCY_KEY, Consistency
from meshkp.http.errors import error_response, status_of, text_error
from meshkp.http.hkp import HkpHandlers, options_of, wants_json
from meshkp.http.labels import LOOKUP_OPS, OP_LABEL
from meshkp.http.metrics import CONTENT_TYPE, HttpMetrics
from meshkp.http.ratelimit import RateLimiter
from meshkp.keys.service import KeyService
from meshkp.limits import Limits

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("meshkp.service", KeyService)
METRICS_KEY = web.AppKey("meshkp.metrics", HttpMetrics)
GUARD_KEY = web.AppKey("meshkp.connection_guard", ConnectionGuard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _labels(request: web.Request) -> tuple[str, str]:
    """Bounded metric labels: the route template (not the raw path) and the HKP op."""
    route = request.match_info.route
    resource = route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    op = ""
    if endpoint == "/pks/lookup":
        op = request.get(OP_LABEL) or str(request.query.get("op", "")).lower()
        if op not in LOOKUP_OPS:
            op = "other"
    return endpoint, op


def make_error_middleware(
    metrics: HttpMetrics, limits: Limits
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except MeshkpError as exc:
            status = status_of(exc)
            # Not logged: 501 (asked for what we do not do), Overloaded and StoreFull (logged
            # where refused, once per episode: a full disk must not flood the log).
            if status >= 500 and status != 501 and not isinstance(exc, (Overloaded, StoreFull)):
                log.error("event=http_error status=%d path=%s error=%r", status, request.path, exc)
            return error_response(exc, as_json=_json_error(request))
        except HTTPException as exc:
            status = exc.status
            raise
        except HttpProcessingError as exc:
            # aiohttp could not parse part of the request (a header of a multipart body...):
            # the client's fault, whichever layer tripped over it.
            status = 400
            return text_error(400, f"malformed request: {exc.message or exc!s:.200}")
        except RequestPayloadError as exc:
            # The body stopped making sense while being read: a corrupt Content-Encoding
            # (gzip, deflate, br) or chunked framing. aiohttp raises this outside its
            # HttpProcessingError tree, so it was a 500 (red-team finding 8).
            status = 400
            cause = exc.__cause__ or exc
            reason = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
            response = text_error(400, f"request body cannot be read: {reason.strip():.160} "
                                       "(is its Content-Encoding right?)")
            # The rest of this body cannot be read either: close the connection after the
            # answer, and end the body here so that aiohttp's lingering read does not trip
            # over the same error ("Unhandled exception") and drop the answer's connection.
            response.force_close()
            request.content.feed_eof()
            return response
        except ConnectionResetError:
            # The client closed its connection while we read its body (a stalled upload given
            # up): nobody is left to answer. Not a bug; counted as the client's 400.
            status = 400
            return text_error(400, "the connection was closed before the request body ended")
        except Exception:
            # Not a MeshkpError: a bug. Answer 500 without details, log the traceback, count it.
            metrics.bugs.inc()
            log.exception("event=http_bug method=%s path=%s", request.method, request.path)
            return text_error(500, "internal error (a bug; it was logged)")
        finally:
            endpoint, op = _labels(request)
            metrics.observe(endpoint, op, status, time.perf_counter() - started)

    return errors_and_metrics


def _json_error(request: web.Request) -> bool:
    return request.path == "/pks/add" and wants_json(request, options_of(request.query))


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
    limiter = RateLimiter(lambda: service.limits, resolver, metrics.registry) if rate_limits else None
    # The listener's connection caps (the runner's site applies them: meshkp/node/parts.py).
    guard = ConnectionGuard(lambda: service.limits, resolver, metrics.registry,
                            banned=limiter.is_banned if limiter is not None else None)
    middlewares = [guard.middleware, make_error_middleware(metrics, limits)]
    if limiter is not None:
        # Inside the error middleware: its 429s are counted and logged like every answer.
        middlewares.append(limiter.middleware)
    # client_max_size bounds every body aiohttp buffers (request.read/post) while reading, so
    # a chunked upload without Content-Length cannot grow past the limit either.
    app = web.Application(client_max_size=limits.upload_bytes, middlewares=middlewares)
    app[GUARD_KEY] = guard
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = metrics
    if consistency is not None:
        app[CONSISTENCY_KEY] = consistency
    HkpHandlers(service, metrics).register(app)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", _root)
    return app
