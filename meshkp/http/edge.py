"""The edge of a node's HTTP app: what every request goes through, once, around its handler.

It wraps the app's own request handler (`Edge.install`), where four aiohttp middlewares did
the same work in turn (error mapping, request metrics, keep-alive shedding, rate limits):
each layer cost a coroutine and a partial per request, and each made its own lookups (the
client, the limits, the labels). Together they took ~12 µs of an op=get that bare aiohttp
answers in ~19 (issue 11). Per request, in order:
1. the client (meshkp/http/clientaddr.py): its connection's, resolved once when it opened
   (meshkp/http/connguard.py), unless the peer is a trusted proxy, whose requests each name
   their client in X-Forwarded-For;
2. the rate limits' admission (meshkp/http/ratelimit.py): a 429 is answered at once;
3. the handler, with meshkp's errors mapped to their status (meshkp/http/errors.py), and
   anything else answered 500, logged and counted as a bug;
4. with the answer's status: the rate limits' error rule, the request metrics, and the
   connection's fate. It is closed after the answer when the listener is crowded (above
   CROWDED_SHARE of `Limits.http_connections`: idle keep-alive connections give their slots
   back first) or when it has carried `Limits.http_connection_requests` requests.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_urldispatcher import UrlDispatcher, UrlMappingMatchInfo

from meshkp.errors import MeshkpError, Overloaded, StoreFull
from meshkp.http.clientaddr import CLIENT_KEY, ClientResolver
from meshkp.http.connguard import CROWDED_SHARE, ConnectionGuard
from meshkp.http.errors import error_response, status_of, text_error
from meshkp.http.hkp import options_of, wants_json
from meshkp.http.labels import LOOKUP_OPS, OP_LABEL
from meshkp.http.metrics import HttpMetrics
from meshkp.http.ratelimit import RateLimiter
from meshkp.limits import Limits

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Edge:
    """The per-request work of one app around its handler (see the module docstring)."""

    def __init__(self, limits: Callable[[], Limits], metrics: HttpMetrics,
                 resolver: ClientResolver | None = None, guard: ConnectionGuard | None = None,
                 limiter: RateLimiter | None = None) -> None:
        """`guard`: the listener's (whose connections the edge then knows); None for an app
        served by a plain runner (tests, tools): every request resolves its own client."""
        self._limits = limits  # read per request: the cluster policy may replace them
        self.metrics = metrics
        self.resolver = resolver = resolver or ClientResolver()
        self.guard = guard or ConnectionGuard(limits, resolver)
        self.limiter = limiter
        self._connections = self.guard.connections  # the same dict: one lookup per request
        self._observe = metrics.requests.observe
        self._inner: Handler = _not_installed
        self._router = UrlDispatcher()
        # Values derived from the limits in force, recomputed when they are replaced.
        self._seen: Limits | None = None
        self._crowded_above = 0.0
        self._requests_cap = 0

    def install(self, app: web.Application) -> None:
        """Answer every request of `app` through this edge, whatever runner serves it.

        aiohttp's Server calls the app's `_handle` (routing, then the handler); wrapping it
        costs nothing beyond the edge's own work, where one middleware costs ~0.7 µs of
        aiohttp's chain building and its current-app layer. The app must have no middleware
        that needs to run before the edge (none do: they come after routing)."""
        self._inner = app._handle
        self._router = app.router
        app._handle = self.handle  # type: ignore[method-assign]

    @property
    def inner(self) -> Handler:
        """The app's own handler (routing, then the route's), as it was before `install`."""
        return self._inner

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        limits = self._limits()
        if limits is not self._seen:
            self._adopt(limits)
        connection = self._connections.get(request.protocol)
        client = connection.client if connection is not None else None
        if client is None:
            client = self.resolver.resolve(request)
        request[CLIENT_KEY] = client
        limiter = None if client.exempt else self.limiter
        state = None
        routed: UrlMappingMatchInfo | None = None  # when answered before the app routed it
        response: web.StreamResponse | None = None
        status = 500
        try:
            if limiter is not None:
                state, response = limiter.admit(request, client, limits)
            if response is None:
                response = await self._inner(request)
            else:
                routed = await self._router.resolve(request)  # only for its metric label
            status = response.status
        except HTTPException as exc:
            status = exc.status
            response = exc  # an HTTPException is the answer aiohttp sends: it may close too
            raise
        except Exception as exc:
            response = answer_error(request, exc, self.metrics)
            status = response.status
        finally:
            # After: only errors and uploads have anything left to count (ratelimit.after).
            if state is not None and (status >= 400 or request.method == "POST"):
                assert limiter is not None
                limiter.after(request, client, state, status)
            endpoint, op = self._labels(request, routed)
            self._observe(endpoint, op, status, perf_counter() - started)
            # The connection's fate: closed after this answer if it carried its share, or if
            # the listener is crowded (keep-alive shedding: the slot goes back at once).
            if connection is not None:
                connection.requests += 1
                if connection.requests >= self._requests_cap and response is not None:
                    response.force_close()
            if self.guard.total > self._crowded_above and response is not None:
                response.force_close()
        return response

    def _labels(self, request: web.Request, routed: UrlMappingMatchInfo | None,
                ) -> tuple[str, str]:
        """Bounded metric labels: the route template (not the raw path) and the HKP op."""
        op = request.get(OP_LABEL)
        if op is not None:
            return "/pks/lookup", op  # the lookup handler's label, one of LOOKUP_OPS or "other"
        info = request._match_info if routed is None else routed
        if info is None:
            return "unmatched", ""  # failed before routing
        resource = info.route.resource  # None: aiohttp's own 404 or 405
        endpoint = resource.canonical if resource is not None else "unmatched"
        if endpoint != "/pks/lookup":
            return endpoint, ""
        # Answered before the handler labelled it (a 429): the op as the handler reads it.
        op = str(request.query.get("op", "")).strip().lower()
        return endpoint, op if op in LOOKUP_OPS else "other"

    def _adopt(self, limits: Limits) -> None:
        self._seen = limits
        self._crowded_above = limits.http_connections * CROWDED_SHARE
        self._requests_cap = limits.http_connection_requests


async def _not_installed(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("Edge.install(app) was not called: the edge has no handler to wrap")


def answer_error(request: web.Request, exc: Exception, metrics: HttpMetrics) -> web.Response:
    """The answer to a handler's exception: its status and reason, never a stack trace."""
    if isinstance(exc, MeshkpError):
        status = status_of(exc)
        # Not logged: 501 (asked for what we do not do), Overloaded and StoreFull (logged
        # where refused, once per episode: a full disk must not flood the log).
        if status >= 500 and status != 501 and not isinstance(exc, (Overloaded, StoreFull)):
            log.error("event=http_error status=%d path=%s error=%r", status, request.path, exc)
        return error_response(exc, as_json=_json_error(request))
    if isinstance(exc, HttpProcessingError):
        # aiohttp could not parse part of the request (a header of a multipart body...):
        # the client's fault, whichever layer tripped over it.
        return text_error(400, f"malformed request: {exc.message or exc!s:.200}")
    if isinstance(exc, RequestPayloadError):
        # The body stopped making sense while being read: a corrupt Content-Encoding
        # (gzip, deflate, br) or chunked framing. aiohttp raises this outside its
        # HttpProcessingError tree, so it was a 500 (red-team finding 8).
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
    if isinstance(exc, ConnectionResetError):
        # The client closed its connection while we read its body (a stalled upload given
        # up): nobody is left to answer. Not a bug; counted as the client's 400.
        return text_error(400, "the connection was closed before the request body ended")
    # Not a MeshkpError: a bug. Answer 500 without details, log the traceback, count it.
    metrics.bugs.inc()
    log.error("event=http_bug method=%s path=%s", request.method, request.path, exc_info=exc)
    return text_error(500, "internal error (a bug; it was logged)")


def _json_error(request: web.Request) -> bool:
    return request.path == "/pks/add" and wants_json(request, options_of(request.query))
