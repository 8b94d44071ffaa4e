"""HKP endpoints (draft-shaw-openpgp-hkp, draft-gallagher-openpgp-hkp): /pks/lookup, /pks/add,
/pks/hashquery and /pks/health.

Variables the draft does not define are ignored (§3.1). The Host header plays no part: one
node serves one key set, whatever name it was reached by.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiMapping

from meshkp.errors import InvalidRequest, LimitExceeded, Unsupported
from meshkp.http import html, mr
from meshkp.http.consistency import CONSISTENCY_KEY, confirmed, level_asked
from meshkp.http.labels import LOOKUP_OPS, OP_LABEL
from meshkp.http.metrics import HttpMetrics
from meshkp.http.ratelimit import CPU_MS_KEY
from meshkp.http.replycache import MAX_AGE_S, Reply, ReplyCache, reply_headers
from meshkp.http.routing import ROUTING_KEY
from meshkp.http.sks import encode_hashquery_response, parse_hashquery
from meshkp.http.uploads import UploadBudget
from meshkp.keys.ingest import Status
from meshkp.keys.query import parse_query
from meshkp.keys.service import AddReport, KeyService
from meshkp.limits import Limits
from meshkp.replication.consistency import parse_level

log = logging.getLogger(__name__)

PGP_KEYS = "application/pgp-keys"
MR_TYPE = "text/plain"
HTML_TYPE = "text/html"
# Ops of HKP we know but do not serve (SKS's photo ID op); anything else unknown is a 501 too.
KNOWN_UNSUPPORTED = frozenset({"photo", "x-photo"})
_HEX = frozenset(string.hexdigits)


def options_of(params: MultiMapping[Any]) -> frozenset[str]:
    """The `options` variable as a set (it is comma-separated and may repeat, §3.2)."""
    found: set[str] = set()
    for value in params.getall("options", ()):
        found.update(part.strip().lower() for part in str(value).split(",") if part.strip())
    return frozenset(found)


def _flag(params: MultiMapping[str], name: str) -> bool:
    return str(params.get(name, "")).lower() in ("on", "1", "true", "yes")


def wants_json(request: web.Request, options: frozenset[str]) -> bool:
    return "mr" in options or "json" in options or "application/json" in request.headers.get(
        "Accept", ""
    )


class HkpHandlers:
    """The request handlers; all key logic is in KeyService."""

    def __init__(self, service: KeyService, metrics: HttpMetrics) -> None:
        self.service = service
        self.metrics = metrics
        self.replies = ReplyCache()
        self.uploads = UploadBudget(lambda: self.limits)  # red-team finding 4: stalled uploads

    @property
    def limits(self) -> Limits:
        """The limits in force: the committer's, which the cluster policy replaces at run time."""
        return self.service.limits

    def register(self, app: web.Application) -> None:
        app.router.add_get("/pks/lookup", self.lookup)
        app.router.add_post("/pks/add", self.add)
        app.router.add_post("/pks/hashquery", self.hashquery)
        app.router.add_get("/pks/health", self.health)

    # -- GET /pks/lookup ---------------------------------------------------------------------

    async def lookup(self, request: web.Request) -> web.StreamResponse:
        # Hot path: the same query string since the last write gets the same reply. The raw
        # (still percent-encoded) form is the key: decoding it costs ~0.6 µs a request.
        raw = request.rel_url.raw_query_string
        epoch = self.service.epoch
        hit = self.replies.get(raw, epoch, self.service.clock())
        if hit is not None:
            request[OP_LABEL] = hit.op
            return web.Response(body=hit.body, headers=reply_headers(hit.content_type))
        params = request.query
        op = str(params.get("op", "")).strip().lower()
        request[OP_LABEL] = op if op in LOOKUP_OPS else "other"
        if not op:
            raise InvalidRequest("missing the 'op' variable: use op=get, op=index or op=vindex")
        if op == "get":
            return await self._get(params, raw, epoch)
        if op in ("index", "vindex"):
            return await self._index(params, options_of(params), op == "vindex", raw, epoch)
        if op == "stats":
            return await self._stats(options_of(params))
        if op == "hget":
            return await self._hget(params)
        what = "known but not supported" if op in KNOWN_UNSUPPORTED else "not an HKP operation"
        raise Unsupported(f"op={op[:40]} is {what} here; use get, index, vindex, stats or hget")

    async def _get(self, params: MultiMapping[str], raw: str, epoch: tuple[int, int]) -> web.Response:
        query = parse_query(params.get("search"), _flag(params, "exact"), self.limits)
        body = await self.service.get(query)
        until = self.service.clock() + MAX_AGE_S
        self.replies.put(raw, Reply(epoch, until, body, PGP_KEYS, "get"))
        return web.Response(body=body, content_type=PGP_KEYS)

    async def _index(
        self, params: MultiMapping[str], options: frozenset[str], verbose: bool,
        raw: str, epoch: tuple[int, int],
    ) -> web.Response:
        search = params.get("search")
        query = parse_query(search, _flag(params, "exact"), self.limits)
        op = "vindex" if verbose else "index"
        if "mr" in options:
            blocks, valid_until = await self.service.index_mr(query, mr.key_block)
            body = mr.index_document(blocks, len(blocks))
            until = min(valid_until, self.service.clock() + MAX_AGE_S)
            self.replies.put(raw, Reply(epoch, until, body, MR_TYPE, op))
            return web.Response(body=body, content_type=MR_TYPE, charset="utf-8")
        views = await self.service.index(query)
        now = self.service.clock()
        # Up to Limits.reply_bytes of keys to escape into HTML: built off the event loop, once
        # until a write or an expiry flag flips (a vindex page costs ~100 µs to build).
        page = await asyncio.get_running_loop().run_in_executor(
            None, html.index_page, query.text, views, now, verbose
        )
        until = min([now + MAX_AGE_S, *(view.changes_after(now) for view in views)])
        self.replies.put(raw, Reply(epoch, until, page, HTML_TYPE, op))
        return web.Response(body=page, content_type=HTML_TYPE, charset="utf-8")

    async def _stats(self, options: frozenset[str]) -> web.Response:
        stats = await self.service.stats()
        if "mr" in options or "json" in options:
            return web.json_response(stats)
        return web.Response(body=html.stats_page(stats), content_type="text/html", charset="utf-8")

    async def _hget(self, params: MultiMapping[str]) -> web.Response:
        search = str(params.get("search", "")).strip()
        if search[:2].lower() == "0x":
            search = search[2:]
        if len(search) != 32 or not all(c in _HEX for c in search):
            raise InvalidRequest("op=hget needs search=<SKS digest>: 32 hex digits (MD5)")
        body = await self.service.hget(bytes.fromhex(search))
        return web.Response(body=body, content_type=PGP_KEYS)

    # -- POST /pks/add -----------------------------------------------------------------------

    async def add(self, request: web.Request) -> web.Response:
        gate = request.app.get(ROUTING_KEY)
        if gate is not None:
            gate.check_writable()  # a read-only node refuses before reading the body
        # x-consistency (meshkp/http/consistency.py): a bad level is a 400 before anything is
        # stored, and one in the header or query before the body is even read.
        consistency = request.app.get(CONSISTENCY_KEY)
        asked = level_asked(request)
        level = "one"
        if consistency is not None and asked is not None:
            level = parse_level(asked, consistency.default)
        form = await self.uploads.read(request, lambda: read_add_form(request, self.limits))
        if consistency is not None and asked is None:
            level = parse_level(level_asked(request, form), consistency.default)
        options = options_of(form) | options_of(request.query)
        as_json = wants_json(request, options)
        keytext = await _field_bytes(form.get("keytext"))
        if not keytext or not keytext.strip():
            raise InvalidRequest("missing the 'keytext' form field: POST keytext=<armored key>")
        report = await self.service.add(keytext)
        request[CPU_MS_KEY] = report.cpu_ms
        self._count(report)
        status = report.http_status
        # Logged before the reply is written. After it (loop.call_soon) showed no net gain: the
        # line still runs on the loop while a client sending one upload at a time reads the
        # reply and sends the next (docs/benchmarks.md, issue 14's third pass).
        _log_upload(report)
        if as_json:
            body = (json.dumps(report.to_json()) + "\n").encode()
            response = web.Response(status=status, body=body, content_type="application/json",
                                    charset="utf-8")
        else:
            response = web.Response(status=status, body=report.to_text().encode(),
                                    content_type="text/plain", charset="utf-8")
        if consistency is None:
            return response
        return await confirmed(consistency, level, report, response, as_json)

    def _count(self, report: AddReport) -> None:
        count = self.metrics.uploads.count
        for outcome in report.outcomes:
            rejected = outcome.status is Status.REJECTED
            count(outcome.status.value, outcome.rejection if rejected else None)

    # -- POST /pks/hashquery, GET /pks/health -------------------------------------------------

    async def hashquery(self, request: web.Request) -> web.Response:
        check_length(request, self.limits)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise LimitExceeded("hashquery body too large", limit="upload_bytes") from None
        keys = await self.service.hashquery(parse_hashquery(body))
        return web.Response(body=encode_hashquery_response(keys), content_type="pgp/keys")

    async def health(self, request: web.Request) -> web.Response:
        stats = await self.service.stats()
        return web.json_response(
            {"status": "ok", "node_id": stats["node_id"], "keys": stats["keys"]}
        )


def check_length(request: web.Request, limits: Limits) -> None:
    """413 before reading anything when Content-Length already says the body is too big."""
    length = request.content_length
    if length is not None and length > limits.upload_bytes:
        raise LimitExceeded(
            f"upload of {length} bytes exceeds the limit of {limits.upload_bytes} "
            "(config limits.upload_bytes)",
            limit="upload_bytes",
        )


async def read_add_form(request: web.Request, limits: Limits) -> MultiMapping[Any]:
    """The fields of a POST /pks/add body; LimitExceeded or InvalidRequest if it cannot be read.

    aiohttp's client_max_size enforces upload_bytes while reading.
    """
    check_length(request, limits)
    try:
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return await request.post()
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise LimitExceeded(
            f"upload exceeds the limit of {limits.upload_bytes} bytes "
            "(config limits.upload_bytes)",
            limit="upload_bytes",
        ) from None
    # A body aiohttp cannot parse. Its multipart reader also raises LookupError for a part's
    # unknown charset and RuntimeError for an unknown Content-Transfer-Encoding/-Encoding:
    # the client's fault too, never a 500.
    except (ValueError, LookupError, RuntimeError, HttpProcessingError) as exc:
        raise InvalidRequest(f"form data cannot be parsed: {exc!s:.200}") from None
    # No (or another) content type: accept a urlencoded body anyway, as SKS does.
    text = body.decode("latin-1")
    return MultiDict(
        (k, v.encode("latin-1"))
        for k, v in parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    )


async def _field_bytes(value: object) -> bytes | None:
    """A form field's content as bytes (a text field, or an uploaded file)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape")
    file = getattr(value, "file", None)
    if file is not None:
        data = file.read()
        return data if isinstance(data, bytes) else str(data).encode()
    return str(value).encode()


_STATUSES = (Status.ADDED, Status.UPDATED, Status.UNCHANGED, Status.REJECTED)


def _log_upload(report: AddReport) -> None:
    log.info("event=upload added=%d updated=%d unchanged=%d rejected=%d",
             *(report.count(s) for s in _STATUSES))
